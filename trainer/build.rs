//! Used by the trainer and the worker (`build = "../trainer/build.rs"`): every binary
//! that links libtorch needs it.
//!
//! rustc links with `--as-needed`, which drops `libtorch_cuda.so` (nothing references
//! it by symbol) and leaves a binary that reports no CUDA. Keep it linked when the
//! libtorch in use has it, and add an rpath so the binary runs without
//! LD_LIBRARY_PATH here (LD_LIBRARY_PATH still wins on a GPU machine).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    if Path::new(&dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
}
