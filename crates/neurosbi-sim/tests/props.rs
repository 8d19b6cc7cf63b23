//! Property tests: the parser never panics, printing and re-parsing gives the same
//! program, and the unit algebra obeys its laws.

use neurosbi_sim::equations::EquationSet;
use neurosbi_sim::syntax::{BinOp, Expr, ExprKind, UnOp, parse_expr};
use neurosbi_sim::units::{Dimension, lookup_unit};
use neurosbi_sim::{Model, ModelDescription, ModelSpec};
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
