//! The `rootroll` binary: parse arguments, run one command, map the result to an exit code
//! (0 ok, 1 a gate failed or `--check` found drift, 2 an error).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (e.g. `rootroll plan … | head`) is not an error.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            cli::print_error(&err);
            ExitCode::from(2)
        }
    }
}
