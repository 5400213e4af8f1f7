// Empty: the module is the header; libpcre2-8 does the work.
