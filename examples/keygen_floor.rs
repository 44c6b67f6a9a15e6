//! The key generation floor of `scripts/bench.sh`: generates COUNT keys of one algorithm and
//! nothing else (no certificate, no encryption, no file), with the same code and the same
//! workers `rootroll render` uses (`pki::generate_key` over `parallel::map`, one worker per
//! core), and prints the wall time.
//!
//! ```sh
//! cargo run --release --example keygen_floor -- 11 rsa-4096
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Instant;

use rootroll::parallel;
use rootroll::pki::{Algorithm, generate_key};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(count), Some(algorithm)) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1).and_then(|a| Algorithm::parse(a)),
    ) else {
        eprintln!(
            "usage: keygen_floor COUNT ALGORITHM ({})",
            Algorithm::NAMES.join(", ")
        );
        return ExitCode::from(2);
    };
    let jobs = vec![algorithm; count];
    let start = Instant::now();
    let keys = parallel::map(&jobs, |a| generate_key(*a), |_, _| {});
    let elapsed = start.elapsed();
    if let Some(Err(e)) = keys.iter().find(|k| k.is_err()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{count} {} key(s) on {} worker(s) in {:.3} s",
        algorithm.name(),
        parallel::threads(),
        elapsed.as_secs_f64()
    );
    ExitCode::SUCCESS
}
