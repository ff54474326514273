//! glibc's allocator for a trainer with big layers. Blocks over 32 MB (the first layer of
//! a text model, 50,000 inputs x 256, its gradient and its optimiser temporaries) come
//! straight from `mmap` and go back on `free`, so every training step pays page faults
//! zero-filling fresh pages: on GoEmotions (50k TF-IDF features) a third of the CPU time
//! was the kernel's. A 1 GB top pad keeps freed memory in the heap for the next step
//! (measured: 14.1 s -> 8.4 s an epoch, system time 7.7 s -> 0.6 s, peak RSS 0.91 ->
//! 1.24 GB; dense MULAN models unchanged). glibc reads its tunables when the process
//! starts, so the worker starts itself again with them set, once; a user's own `MALLOC_*`
//! settings, or `SWEEP_MALLOC_TUNING=off`, leave it alone.

/// Re-executes this process with the tuned allocator, unless already tuned or told not
/// to; returns only when it does not (or cannot) re-execute.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let set_by_user = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"));
        if set_by_user || std::env::var_os("SWEEP_MALLOC_TUNING").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("MALLOC_TOP_PAD_", (1u64 << 30).to_string())
            .env("SWEEP_MALLOC_TUNING", "on")
            .exec();
        eprintln!("sweep-worker: could not restart with the tuned allocator ({err}); going on without");
    }
}
