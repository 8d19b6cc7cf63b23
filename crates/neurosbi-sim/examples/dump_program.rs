//! Prints the compiled step program of a model file (compiler diagnostics):
//! `cargo run -p neurosbi-sim --example dump_program -- examples/models/hh_c.toml 1e-5`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map_or("examples/models/hh_c.toml", String::as_str);
    let dt: f64 = args
        .get(2)
        .map_or(1e-5, |s| s.parse().expect("dt in seconds"));
    let spec = neurosbi_sim::ModelSpec::from_file(std::path::Path::new(path)).expect("model file");
    let model = spec.build().expect("model");
    let k = neurosbi_sim::CompiledKernel::new(&model, dt, &[]).expect("compile");
    println!("{}", k.listing());
}
