//! Property tests: the parser never panics, printing and re-parsing gives the same
//! program, and the unit algebra obeys its laws.

use neurosbi_sim::equations::EquationSet;
use neurosbi_sim::syntax::{BinOp, Expr, ExprKind, UnOp, parse_expr};
use neurosbi_sim::units::{Dimension, lookup_unit};
use neurosbi_sim::{Model, ModelDescription, ModelSpec, RunConfig};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (0.0f64..1e6).prop_map(|v| Expr {
            kind: ExprKind::Num(v),
            offset: 0
        }),
        prop::sample::select(vec!["v", "gNa", "tau", "mV", "x_1", "t"]).prop_map(|n| Expr {
            kind: ExprKind::Name(n.to_string()),
            offset: 0
        }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 64, 3, |inner| {
        let ops = prop::sample::select(vec![
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Pow,
            BinOp::Lt,
            BinOp::Ge,
            BinOp::And,
            BinOp::Or,
        ]);
        prop_oneof![
            (ops, inner.clone(), inner.clone()).prop_map(|(op, a, b)| Expr {
                kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
                offset: 0
            }),
            (
                prop::sample::select(vec![UnOp::Neg, UnOp::Not]),
                inner.clone()
            )
                .prop_map(|(op, a)| Expr {
                    kind: ExprKind::Unary(op, Box::new(a)),
                    offset: 0
                }),
            (
                prop::sample::select(vec!["exp", "exprel", "clip", "sqrt"]),
                prop::collection::vec(inner, 1..4)
            )
                .prop_map(|(f, args)| Expr {
                    kind: ExprKind::Call(f.to_string(), args),
                    offset: 0
                }),
        ]
    })
}

fn dimension() -> impl Strategy<Value = Dimension> {
    prop::array::uniform7(-4i32..=4).prop_map(|e| Dimension {
        exponents: e.map(f64::from),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic(s in "[a-z0-9_ .+*/()<>=!:,#\\n\\-]{0,80}") {
        let _ = parse_expr("p", &s);
        let _ = EquationSet::parse("p", &s);
        let _ = Model::new(&ModelDescription::new(s.clone()).threshold(s.clone()).reset(s.clone()));
        let _ = ModelSpec::parse("p.toml", &s);
    }

    #[test]
    fn parsers_never_panic_on_any_unicode(s in "\\PC{0,60}") {
        let _ = parse_expr("p", &s);
        let _ = EquationSet::parse("p", &s);
        let _ = ModelSpec::parse("p.toml", &s);
    }

    #[test]
    fn printing_then_parsing_gives_the_same_expression(e in expr()) {
        let printed = e.to_string();
        let back = parse_expr("p", &printed).unwrap();
        prop_assert_eq!(&back, &e, "printed as {}", printed);
        prop_assert_eq!(back.to_string(), printed);
    }

    #[test]
    fn printing_then_parsing_an_equation_set_is_stable(a in expr(), b in expr()) {
        let text = format!("dv/dt = {a} : volt (unless refractory)\nx_1 = {b} : 1\ngNa : siemens (constant)\n");
        let set = EquationSet::parse("p", &text).unwrap();
        let again = EquationSet::parse("p", &set.to_string()).unwrap();
        prop_assert_eq!(set.to_string(), again.to_string());
        for (x, y) in set.equations.iter().zip(&again.equations) {
            prop_assert_eq!(&x.expr, &y.expr);
            prop_assert_eq!(x.dim, y.dim);
            prop_assert_eq!(x.flags, y.flags);
        }
    }

    #[test]
    fn unit_algebra_laws(a in dimension(), b in dimension(), c in dimension(), p in -3i32..=3) {
        prop_assert_eq!(a.mul(&b), b.mul(&a));
        prop_assert_eq!(a.mul(&b).mul(&c), a.mul(&b.mul(&c)));
        prop_assert_eq!(a.mul(&b).div(&b), a);
        prop_assert_eq!(a.div(&a), Dimension::DIMENSIONLESS);
        prop_assert_eq!(a.powf(2.0), a.mul(&a));
        prop_assert_eq!(a.powf(0.5).powf(2.0), a);
        prop_assert_eq!(a.mul(&b).powf(f64::from(p)), a.powf(f64::from(p)).mul(&b.powf(f64::from(p))));
    }

    #[test]
    fn prefixes_scale_units(unit in prop::sample::select(vec!["volt", "amp", "siemens", "farad", "second", "metre", "ohm", "hertz"]),
                            prefix in prop::sample::select(vec![("p", 1e-12), ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9)])) {
        let base = lookup_unit(unit).unwrap();
        let scaled = lookup_unit(&format!("{}{unit}", prefix.0)).unwrap();
        prop_assert_eq!(scaled.dim, base.dim);
        prop_assert!((scaled.value / base.value / prefix.1 - 1.0).abs() < 1e-12);
    }
}

#[test]
fn printed_model_equations_compile_to_the_same_program() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    for name in ["hh_a", "hh_b", "hh_c", "adex", "lif", "izhikevich", "expif"] {
        let spec = ModelSpec::from_file(&dir.join(format!("{name}.toml"))).unwrap();
        let model = spec.build().unwrap();
        let mut desc = spec.model.clone();
        desc.equations = model.equations().to_string();
        let again = Model::new(&desc).unwrap();
        let kernel = |m: &Model| {
            neurosbi_sim::CompiledKernel::new(m, 1e-5, &[])
                .unwrap()
                .listing()
        };
        assert_eq!(kernel(&model), kernel(&again), "{name}");
    }
}

// Random models written with the constructs of issue 22: `pi`, `e`, `inf`, `True`, `False`,
// `arcsin` ... `clip`, `int`, `%`, `//`, chained comparisons, `(shared)`, `timestep`,
// `rand()` / `randn()` / `poisson()` in initial values, threshold and reset, `lastspike`,
// resets that write parameters, refractory periods read from state variables, and equations
// joined over lines as Brian allows.

/// A dimensionless expression as text; `leaves` are the names it may read.
fn brian_expr(leaves: Vec<&'static str>) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(leaves).prop_map(str::to_string),
        prop::sample::select(vec![
            "pi",
            "e",
            "inf",
            "True",
            "False",
            "(t/ms)",
            "timestep(t, dt)",
        ])
        .prop_map(str::to_string),
        (0.0f64..50.0).prop_map(|v| format!("{v}")),
        (0u32..10).prop_map(|v| v.to_string()),
    ];
    leaf.prop_recursive(4, 40, 3, |inner| {
        let cmp = || prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]);
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "-", "*", "/", "%", "//", "**"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (inner.clone(), cmp(), inner.clone(), cmp(), inner.clone())
                .prop_map(|(a, o1, b, o2, c)| format!("({a} {o1} {b} {o2} {c})")),
            (
                inner.clone(),
                prop::sample::select(vec!["and", "or"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("(not {a})")),
            inner.clone().prop_map(|a| format!("(-{a})")),
            (
                prop::sample::select(vec![
                    "arcsin", "arccos", "arctan", "expm1", "log1p", "sign", "int", "exp", "abs",
                    "sin",
                ]),
                inner.clone()
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(a, b, c)| format!("clip({a}, {b}, {c})")),
        ]
    })
}

/// Breaks some of the spaces of an equation's right-hand side into new lines (Brian joins
/// an equation's lines up to its `: unit`), some with a comment line in between.
fn join_lines(text: &str, breaks: &[u8]) -> String {
    let mut out = String::new();
    for (k, part) in text.split(' ').enumerate() {
        if k > 0 {
            out.push_str(match breaks[k % breaks.len()] % 8 {
                0 => "\n        ",
                1 => "\n  # a comment\n    ",
                _ => " ",
            });
        }
        out.push_str(part);
    }
    out
}

/// A model description with the random expressions in its equations, threshold, reset,
/// refractory period and initial values.
fn brian_model() -> impl Strategy<Value = ModelDescription> {
    let eq = || brian_expr(vec!["v", "w", "p", "q", "s"]);
    (
        eq(),
        eq(),
        brian_expr(vec!["v", "w", "p", "q"]),
        brian_expr(vec!["v", "w", "p"]),
        prop::collection::vec(any::<u8>(), 2..16),
        any::<bool>(),
    )
        .prop_map(|(a, b, s, r, breaks, shared)| {
            let flag = if shared { "shared" } else { "constant" };
            let equations = format!(
                "dv/dt = {} : 1 (unless refractory)\ndw/dt = (-w + {})/(10*ms) : 1\ns = {} : 1\np : 1 ({flag})\nq : 1\n",
                join_lines(&format!("{a}/ms"), &breaks),
                join_lines(&b, &breaks[1..]),
                join_lines(&s, &breaks),
            );
            ModelDescription::new(equations)
                .threshold(format!("v > 1 + rand() and {r} < 3 <= 4 and t - lastspike > 1*ms"))
                .reset("v = randn()*0.1\nw += rand(); w *= 0.5 + 0*p\nq = poisson(1 + abs(v))")
                .refractory(format!("(1 + abs(sign(w)))*ms + clip({r}, 0, 1)*ms"))
                .initial("v", "rand()")
                .initial("w", "randn() + v + p")
                .initial("v", "v/2")
        })
}

/// The description with every expression parsed and printed back.
fn printed(desc: &ModelDescription, model: &Model) -> ModelDescription {
    use neurosbi_sim::equations::parse_statements;
    use neurosbi_sim::syntax::Source;
    let print = |origin: &str, text: &str| parse_expr(origin, text).unwrap().to_string();
    let mut d = desc.clone();
    d.equations = model.equations().to_string();
    d.threshold = desc.threshold.as_deref().map(|t| print("threshold", t));
    d.refractory = desc.refractory.as_deref().map(|t| print("refractory", t));
    d.reset = desc.reset.as_deref().map(|t| {
        let st = parse_statements(&Source::new("reset", t), t).unwrap();
        st.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    });
    d.initial = desc
        .initial
        .iter()
        .map(|(v, t)| (v.clone(), print("initial", t)))
        .collect();
    d
}

fn full_listing(m: &Model) -> String {
    neurosbi_sim::CompiledKernel::new(m, 1e-4, &["v".to_string(), "s".to_string()])
        .unwrap()
        .full_listing()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The model builds; printing it and parsing the print gives the same compiled programs,
    /// and printing again gives the same text.
    #[test]
    fn brian_constructs_print_reparse_and_compile_to_the_same_program(desc in brian_model()) {
        let model = Model::new(&desc).map_err(|e| TestCaseError::fail(format!("{e}\n{}", desc.equations)))?;
        let again_desc = printed(&desc, &model);
        let again = Model::new(&again_desc).map_err(|e| TestCaseError::fail(format!("{e}\n{}", again_desc.equations)))?;
        prop_assert_eq!(full_listing(&model), full_listing(&again), "{}\nprinted:\n{}", desc.equations, again_desc.equations);
        prop_assert_eq!(model.method(), again.method());
        prop_assert_eq!(printed(&again_desc, &again), again_desc.clone());
        prop_assert_eq!(again.equations().to_string(), again_desc.equations);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `rand()` / `randn()` / `poisson()` draws (initial values, threshold, reset) belong to
    /// the neuron:
    /// its traces and spikes are the same whether it runs with 1 or 2 threads and among `n`
    /// neurons or the first `m` of them.
    #[test]
    fn rand_streams_depend_on_neither_threads_nor_batch_size(
        n in 2usize..150, m_frac in 0.0f64..1.0, seed in any::<u64>(), rate in 50.0f64..500.0
    ) {
        let m = 1 + ((n - 1) as f64 * m_frac) as usize;
        let desc = ModelDescription::new("dv/dt = (xr - v)/(5*ms) : 1\ndxr/dt = -xr/(20*ms) : 1\nrate : Hz (shared)")
            .initial("v", "rand()")
            .initial("xr", "randn()")
            .threshold("rand() < rate*dt or v > 0.9")
            .reset("v = rand()*0.5\nxr += randn() + poisson(2)")
            .refractory("(1 + rand())*ms")
            .method("euler");
        let model = Model::new(&desc).unwrap();
        let cfg = RunConfig::new(1e-4, 300).record(&["v", "xr"]).seed(seed);
        let run = |count: usize, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| model.simulate(&vec![rate; count], 1, &[], &cfg).map_err(|e| e.to_string())).unwrap()
        };
        let all = run(n, 2);
        let one_thread = run(n, 1);
        let some = run(m, 1);
        prop_assert!(all.spikes.iter().any(|s| !s.is_empty()));
        for k in 0..n {
            prop_assert_eq!(&all.spikes[k], &one_thread.spikes[k]);
            prop_assert_eq!(all.trace("v", k), one_thread.trace("v", k));
            prop_assert_eq!(all.trace("xr", k), one_thread.trace("xr", k));
        }
        for k in 0..m {
            prop_assert_eq!(&all.spikes[k], &some.spikes[k]);
            prop_assert_eq!(all.trace("v", k), some.trace("v", k));
            prop_assert_eq!(all.trace("xr", k), some.trace("xr", k));
        }
        // Different neurons draw differently.
        prop_assert_ne!(all.trace("v", 0).unwrap()[0], all.trace("v", n - 1).unwrap()[0]);
    }
}
