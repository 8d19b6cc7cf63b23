//! The canonical form of a checked model: what determines its simulations, independent of how
//! the equations were written (spacing, comments, order of the namespace, units of constants).

use crate::model::Model;

impl Model {
    /// A text that is equal for two models exactly when they simulate alike: the variables,
    /// the lowered right-hand sides (SI, constants folded), noise, threshold, reset,
    /// refractoriness, initial values and the method. Stored artefacts are fingerprinted with it.
    pub fn canonical_form(&self) -> String {
        // Debug of the lowered program prints every f64 exactly (shortest round-trip form),
        // and holds no source text or positions.
        let mut s = format!(
            "states {:?}\nparams {:?}\ninputs {:?}\nnoise {:?}\ndrift {:?}\ndiffusion {:?}\n\
             threshold {:?}\nreset {:?}\nrefractory {:?}\ninitial {:?}\nsubexprs {:?}\nmethod {}",
            self.states,
            self.params,
            self.inputs,
            self.noise,
            self.drift,
            self.diffusion,
            self.threshold,
            self.reset,
            self.refractory,
            self.initial,
            self.subexprs,
            self.method
        );
        // A circuit's step order, held values, spike sources and pathways; written only
        // when present, so that single-neuron models keep the form (and the fingerprints
        // of their stored results) they had before circuits.
        if !self.pre_step.is_empty() || !self.phases.is_empty() {
            s.push_str(&format!(
                "\npre_step {:?}\nphases {:?}",
                self.pre_step, self.phases
            ));
        }
        if !self.events.is_empty() || !self.pathways.is_empty() {
            s.push_str(&format!(
                "\nevents {:?}\npathways {:?}",
                self.events, self.pathways
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::{Model, ModelDescription};

    fn model(eqs: &str, method: &str) -> Model {
        Model::new(&ModelDescription::new(eqs).method(method)).unwrap()
    }

    #[test]
    fn spacing_and_comments_do_not_change_it_but_a_number_does() {
        let a = model("dv/dt = (1 - v)/(10*ms) : 1", "euler");
        let b = model("dv/dt=(1-v)/(10*ms):1   # leak", "euler");
        let c = model("dv/dt = (1 - v)/(11*ms) : 1", "euler");
        let d = model("dv/dt = (1 - v)/(10*ms) : 1", "rk4");
        assert_eq!(a.canonical_form(), b.canonical_form());
        assert_ne!(a.canonical_form(), c.canonical_form());
        assert_ne!(a.canonical_form(), d.canonical_form());
    }

    #[test]
    fn a_circuits_step_order_changes_it() {
        let circuit = |order: &str| {
            let text = format!(
                "[groups.a]\nequations = \"dv/dt = (I - v)/(10*ms) : 1\\nI : 1\"\n\
                 [groups.b]\nequations = \"dv/dt = (I - v)/(10*ms) : 1\\nI : 1\"\norder = {order}\n\
                 [synapses.ab]\nsource = \"a\"\ntarget = \"b\"\nmodel = \"I_post = v_pre : 1 (summed)\"\n"
            );
            let spec = crate::spec::ModelSpec::parse("m.toml", &text).unwrap();
            spec.build().unwrap().canonical_form()
        };
        assert_ne!(circuit("0"), circuit("-1"));
    }
}
