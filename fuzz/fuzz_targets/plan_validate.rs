//! The plan loader (`plan::load`) on arbitrary bytes written to a file: never panics, never
//! overflows the stack. The file sits in `<scratch>/plans/` beside a link to the repository's
//! `tests/`, so the import directories the example plans name (`../tests/fixtures/...`) are
//! read for real.

fn main() {
    let now = time::macros::datetime!(2027-01-01 00:00 UTC);
    afl::fuzz!(|data: &[u8]| {
        let dir = rootroll_fuzz::scratch();
        std::fs::create_dir(dir.join("plans")).expect("scratch plans/");
        std::os::unix::fs::symlink(rootroll_fuzz::repo_tests_dir(), dir.join("tests"))
            .expect("scratch tests/ link");
        let path = dir.join("plans/plan.yaml");
        std::fs::write(&path, data).expect("scratch plan file");
        let _ = rootroll::plan::load(&path, now);
    });
}
