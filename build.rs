// libpam dlclose()s modules at pam_end; Rust's thread-local destructors and the HTTP client's
// runtime thread would then point into unmapped code and crash the host. NODELETE keeps the
// module mapped for the life of the process (testing.md §7).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-link-lib=pam");
}
