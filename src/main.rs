//! The `dndgate` binary; everything lives in the library's [`dndgate::cli`].

fn main() -> std::process::ExitCode {
    dndgate::cli::main()
}
