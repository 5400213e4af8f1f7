// The fuzz executables' entry point. SwiftPM links each executable with `--defsym main=<module>_main`, which
// hides libFuzzer's own `main`; each target defines `<module>_main` by calling this, which runs libFuzzer's
// driver on the target's LLVMFuzzerTestOneInput.
int gw_fuzz_main(int argc, char **argv);
