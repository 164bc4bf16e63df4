//! Campus benchmarks and load generator (see benches/README.md).
