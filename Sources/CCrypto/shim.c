// Empty: the module is the header; libcrypto does the work.
