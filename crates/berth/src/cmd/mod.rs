//! One module per subcommand: an `Args` struct (clap) and an `exec` function.

pub mod inspect;
