//! The `dndgate` binary; everything lives in the library's [`dndgate::cli`].

/// mimalloc instead of glibc's malloc: a webhook makes about a hundred short-lived
/// allocations on whichever runtime thread polls it, and glibc's arenas spent about a
/// quarter of the gateway's CPU under a STOP storm on them (issue 16). The library
/// itself sets no allocator: an embedding program chooses its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dndgate::cli::main()
}
