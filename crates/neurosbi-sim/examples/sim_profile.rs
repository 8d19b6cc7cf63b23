//! Where a model's step spends its time, per instruction of the compiled step program:
//! `cargo run --release -p neurosbi-sim --example sim_profile -- MODEL.toml [DT] [WIDTH]`
//! (default: the C-reference HH model B of `benches/c/hh_b.toml`, dt 0.01 ms, 64 lanes).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/c/hh_b.toml");
    let path = args.get(1).map_or(default, String::as_str);
    let dt: f64 = args
        .get(2)
        .map_or(1e-5, |s| s.parse().expect("dt in seconds"));
    let width: usize = args
        .get(3)
        .map_or(64, |s| s.parse().expect("width in lanes"));
    let spec = neurosbi_sim::ModelSpec::from_file(std::path::Path::new(path)).expect("model file");
    let model = spec.build().expect("model");
    let k = neurosbi_sim::CompiledKernel::new(&model, dt, &[]).expect("compile");
    let p = neurosbi_sim::profile::step_profile(&k, width);
    println!("{path}: step program on {width} lanes, ns per lane (fastest of 200 trials)");
    for (text, ns) in &p.instructions {
        println!("{ns:8.3}  {text}");
    }
    let sum: f64 = p.instructions.iter().map(|(_, t)| t).sum();
    println!("{sum:8.3}  sum of the instructions alone");
    println!(
        "{:8.3}  the whole step ({} instructions)",
        p.whole_ns,
        p.instructions.len()
    );
}
