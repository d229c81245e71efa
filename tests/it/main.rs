//! The integration tests, one binary (linking the crate once instead of once per file):
//! each module runs the real `latentlab` binary or the library on the bundled MNIST.

mod common;

mod backends;
mod bad_inputs;
mod cli_errors;
mod compare_and_tools;
mod compare_at_once;
mod device_parity;
mod explorer_browser;
mod export;
mod fetch;
mod full_disk;
mod fuzz_idx;
mod interrupt_resume;
mod layers;
mod train_run;
