"""Circuit models for the Brian2 reference fixtures (issue 23).

Every string here is given to Brian2 exactly as written (equations, threshold, reset,
refractory, on_pre, on_post, delay and initial-value expressions, namespace expressions).
`generate.py` renders each spec into a Brian2 script (`brian_code` in the fixture), runs
that script and records the results.

Spec layout (all strings are Brian2 code):
  namespace: [(name, expression)], evaluated in order with Brian2's units and the earlier names
  objects:   NeuronGroup / SpikeGeneratorGroup / Synapses, created in this order, each with
             an explicit name (Brian2 sorts objects of one schedule slot by (when, order, name))
  initial:   [(variable, expression string)] assigned in order as `obj.var = 'expression'`,
             or [(variable, ARRAY(key))] assigned as `obj.var_ = arrays[key]` (SI values)
  connect:   {'i': ARRAY, 'j': ARRAY} (explicit lists) or {'condition': str}
  monitors:  state monitors (every step, when='start'; the fixture keeps every
             `record_every`-th sample) and spike monitors
"""

ML_NAMESPACE = [
    # Morris-Lecar, Rinzel & Ermentrout (1989) parameters (oscillating for I in ~90-220 uA)
    ("C", "20*uF"),
    ("g_L", "2*mS"),
    ("g_Ca", "4.4*mS"),
    ("g_K", "8*mS"),
    ("V_L", "-60*mV"),
    ("V_Ca", "120*mV"),
    ("V_K", "-84*mV"),
    ("phi", "0.04/ms"),
    ("V_1", "-1.2*mV"),
    ("V_2", "18*mV"),
    ("V_3", "2*mV"),
    ("V_4", "30*mV"),
]

ML_GATING = """dn/dt = lambda_n*(n_inf - n) : 1
m_inf = 0.5*(1 + tanh((v - V_1)/V_2)) : 1
n_inf = 0.5*(1 + tanh((v - V_3)/V_4)) : 1
lambda_n = phi*cosh((v - V_3)/(2*V_4)) : Hz
"""

SPIKE = {"threshold": "v > -20*mV", "refractory": "v > -20*mV", "reset": None}

GRADED_SYNAPSE = """ds/dt = (s_inf - s)/tau_s : 1 (clock-driven)
s_inf = 1/(1 + exp((V_th - v_pre)/Delta)) : 1
{target}_post = g*s*(E_syn - v_post) : amp (summed)
g : siemens (constant)
"""


class ARRAY(str):
    """Marks a value that is an array stored with the fixture (key into `arrays`)."""


def graded_pair(method: str) -> dict:
    pre_eqs = (
        "dv/dt = (-g_L*(v - V_L) - g_Ca*m_inf*(v - V_Ca) - g_K*n*(v - V_K) + I_app)/C : volt\n"
        + ML_GATING
        + "I_app = I_step*int(t >= t_on) : amp\n"
    )
    post_eqs = (
        "dv/dt = (-g_L*(v - V_L) - g_Ca*m_inf*(v - V_Ca) - g_K*n*(v - V_K) + I_bias + I_syn)/C : volt\n"
        + ML_GATING
        + "I_syn : amp\n"
    )
    return {
        "name": f"graded_pair_{method}",
        "description": (
            "Two Morris-Lecar neurons (Rinzel-Ermentrout parameters): `pre` receives a current "
            "step (I_step from t_on), `post` a constant bias; one graded excitatory synapse "
            "pre -> post with clock-driven s driven by v_pre and a (summed) current into "
            f"post.I_syn. Every object uses method '{method}'."
        ),
        "dt": "0.025*ms",
        "duration": "500*ms",
        "namespace": ML_NAMESPACE
        + [
            ("I_step", "100*uA"),
            ("t_on", "50*ms"),
            ("I_bias", "40*uA"),
            ("tau_s", "10*ms"),
            ("V_th", "-10*mV"),
            ("Delta", "5*mV"),
            ("E_syn", "0*mV"),
        ],
        "objects": [
            {"kind": "NeuronGroup", "name": "pre", "N": 1, "model": pre_eqs, **SPIKE,
             "method": method, "initial": [("v", "V_L"), ("n", "n_inf")]},
            {"kind": "NeuronGroup", "name": "post", "N": 1, "model": post_eqs, **SPIKE,
             "method": method, "initial": [("v", "V_L"), ("n", "n_inf")]},
            {"kind": "Synapses", "name": "pre_post", "source": "pre", "target": "post",
             "model": GRADED_SYNAPSE.format(target="I_syn"), "on_pre": None, "on_post": None,
             "method": method, "connect": {"i": [0], "j": [0]}, "delay": None,
             "initial": [("g", "2*mS"), ("s", "0")]},
        ],
        "monitors": [
            {"kind": "StateMonitor", "name": "state_pre", "source": "pre", "variables": ["v", "n"],
             "record": [0], "record_every": 8},
            {"kind": "StateMonitor", "name": "state_post", "source": "post",
             "variables": ["v", "n", "I_syn"], "record": [0], "record_every": 8},
            {"kind": "StateMonitor", "name": "state_pre_post", "source": "pre_post",
             "variables": ["s"], "record": [0], "record_every": 8},
            {"kind": "SpikeMonitor", "name": "spikes_pre", "source": "pre"},
            {"kind": "SpikeMonitor", "name": "spikes_post", "source": "post"},
        ],
    }


def three_cell() -> dict:
    def ml(bias_name: str, inputs: list[str]) -> str:
        current = " + ".join([bias_name] + inputs)
        lines = (
            f"dv/dt = (-g_L*(v - V_L) - g_Ca*m_inf*(v - V_Ca) - g_K*n*(v - V_K) + {current})/C : volt\n"
            + ML_GATING
        )
        for name in inputs:
            lines += f"{name} : amp\n"
        return lines

    groups = [
        ("ab", "I_ab", ["I_from_lp"]),
        ("lp", "I_lp", ["I_from_ab", "I_from_py"]),
        ("py", "I_py", ["I_from_ab", "I_from_lp"]),
    ]
    objects = []
    for name, bias, inputs in groups:
        objects.append({"kind": "NeuronGroup", "name": name, "N": 1, "model": ml(bias, inputs),
                        **SPIKE, "method": "exponential_euler",
                        "initial": [("v", f"V_L + {len(objects)*5}*mV"), ("n", "n_inf")]})
    synapses = [("ab", "lp", "0.6*mS"), ("ab", "py", "0.5*mS"), ("lp", "ab", "0.3*mS"),
                ("lp", "py", "0.5*mS"), ("py", "lp", "0.3*mS")]
    for pre, post, g in synapses:
        objects.append({"kind": "Synapses", "name": f"{pre}_{post}", "source": pre, "target": post,
                        "model": GRADED_SYNAPSE.format(target=f"I_from_{pre}"),
                        "on_pre": None, "on_post": None, "method": "euler",
                        "connect": {"i": [0], "j": [0]}, "delay": None,
                        "initial": [("g", g), ("s", "0")]})
    monitors = []
    for name, _, inputs in groups:
        extra = inputs if name == "lp" else []
        monitors.append({"kind": "StateMonitor", "name": f"state_{name}", "source": name,
                         "variables": ["v"] + extra, "record": [0], "record_every": 20})
    for pre, post, _ in synapses:
        monitors.append({"kind": "StateMonitor", "name": f"state_{pre}_{post}",
                         "source": f"{pre}_{post}", "variables": ["s"], "record": [0],
                         "record_every": 20})
    for name, _, _ in groups:
        monitors.append({"kind": "SpikeMonitor", "name": f"spikes_{name}", "source": name})
    return {
        "name": "three_cell",
        "description": (
            "Pyloric-like three-neuron circuit of Morris-Lecar cells (ab: pacemaker-like, lp, py) "
            "with five mutual inhibitory graded synapses (E_syn = -80 mV): ab->lp, ab->py, "
            "lp->ab, lp->py, py->lp. Each synapse sums into its own post-synaptic variable "
            "(Brian2 refuses two (summed) variables with the same target). Neurons use "
            "exponential_euler, synapses euler."
        ),
        "dt": "0.025*ms",
        "duration": "1*second",
        "namespace": ML_NAMESPACE
        + [("I_ab", "110*uA"), ("I_lp", "130*uA"), ("I_py", "120*uA"), ("tau_s", "20*ms"),
           ("V_th", "-20*mV"), ("Delta", "5*mV"), ("E_syn", "-80*mV")],
        "objects": objects,
        "monitors": monitors,
    }


COBA_EQS = """dv/dt  = (ge*(Erev_exc-v)+gi*(Erev_inh-v)-(v-El) + I)*(1./taum) : volt (unless refractory)
dge/dt = -ge/taue : 1
dgi/dt = -gi/taui : 1
"""


def coba() -> dict:
    return {
        "name": "coba",
        "description": (
            "Vogels & Abbott (2005) COBA network as in Brian2's benchmarks (Brette et al. 2007, "
            "benchmark 1): 4000 LIF neurons (0-3199 excitatory, 3200-3999 inhibitory), "
            "conductances in units of the leak conductance, event-driven increments "
            "(ge += we, gi += wi), Bernoulli(p = 0.02) connectivity for every ordered pair "
            "including i == j (numpy default_rng(seed), stored), v initial (randn*5 - 55) mV "
            "(numpy default_rng(seed), stored), ge = gi = 0, euler, dt 0.1 ms, 1 s."
        ),
        "dt": "0.1*ms",
        "duration": "1*second",
        "namespace": [("taum", "20*ms"), ("taue", "5*ms"), ("taui", "10*ms"), ("Vt", "-50*mV"),
                      ("Vr", "-60*mV"), ("El", "-60*mV"), ("Erev_exc", "0.*mV"),
                      ("Erev_inh", "-80.*mV"), ("I", "20.*mvolt"), ("we", "0.6"), ("wi", "6.7")],
        "objects": [
            {"kind": "NeuronGroup", "name": "neurons", "N": 4000, "model": COBA_EQS,
             "threshold": "v>Vt", "reset": "v = Vr", "refractory": "5*ms", "method": "euler",
             "initial": [("v", ARRAY("neurons_v0")), ("ge", "0"), ("gi", "0")]},
            {"kind": "Synapses", "name": "exc", "source": "neurons", "target": "neurons",
             "model": "", "on_pre": "ge += we", "on_post": None, "method": None,
             "connect": {"i": ARRAY("exc_i"), "j": ARRAY("exc_j")}, "delay": None, "initial": []},
            {"kind": "Synapses", "name": "inh", "source": "neurons", "target": "neurons",
             "model": "", "on_pre": "gi += wi", "on_post": None, "method": None,
             "connect": {"i": ARRAY("inh_i"), "j": ARRAY("inh_j")}, "delay": None, "initial": []},
        ],
        "monitors": [
            {"kind": "StateMonitor", "name": "state_neurons", "source": "neurons",
             "variables": ["v", "ge", "gi"], "record": [0, 1, 2, 3200, 3201], "record_every": 1,
             "keep_steps": 2000},
            {"kind": "StateMonitor", "name": "state_neurons_v", "source": "neurons",
             "variables": ["v"], "record": [0, 1, 2, 3200, 3201], "record_every": 10},
            {"kind": "SpikeMonitor", "name": "spikes_neurons", "source": "neurons"},
        ],
    }


STDP_NEURON = """dv/dt = (ge * (Ee-v) + El - v) / taum : volt
dge/dt = -ge / taue : 1
"""
STDP_SYNAPSE = """w : 1
                dApre/dt = -Apre / taupre : 1 (event-driven)
                dApost/dt = -Apost / taupost : 1 (event-driven)"""
STDP_ON_PRE = """ge += w
                    Apre += dApre
                    w = clip(w + Apost, 0, gmax)"""
STDP_ON_POST = """Apost += dApost
                     w = clip(w + Apre, 0, gmax)"""


def stdp() -> dict:
    return {
        "name": "stdp",
        "description": (
            "Brian2's examples/synapses/STDP.py (Song, Miller & Abbott 2000) with the equation, "
            "on_pre and on_post strings verbatim, the PoissonGroup replaced by a "
            "SpikeGeneratorGroup of 1000 fixed 15 Hz Poisson trains on the dt grid (numpy "
            "default_rng(seed), stored), initial weights rand()*gmax replaced by stored numpy "
            "draws, 10 s instead of 100 s. One LIF neuron, euler, dt 0.1 ms."
        ),
        "dt": "0.1*ms",
        "duration": "10*second",
        "namespace": [("taum", "10*ms"), ("taupre", "20*ms"), ("taupost", "taupre"),
                      ("Ee", "0*mV"), ("vt", "-54*mV"), ("vr", "-60*mV"), ("El", "-74*mV"),
                      ("taue", "5*ms"), ("gmax", ".01"), ("dApre", ".01*gmax"),
                      ("dApost", "-.01 * taupre / taupost * 1.05*gmax")],
        "objects": [
            {"kind": "SpikeGeneratorGroup", "name": "inputs", "N": 1000,
             "indices": ARRAY("inputs_i"), "steps": ARRAY("inputs_step")},
            {"kind": "NeuronGroup", "name": "neurons", "N": 1, "model": STDP_NEURON,
             "threshold": "v>vt", "reset": "v = vr", "refractory": None, "method": "euler",
             "initial": []},
            {"kind": "Synapses", "name": "stdp", "source": "inputs", "target": "neurons",
             "model": STDP_SYNAPSE, "on_pre": STDP_ON_PRE, "on_post": STDP_ON_POST,
             "method": None, "connect": {"i": ARRAY("stdp_i"), "j": ARRAY("stdp_j")},
             "delay": None, "initial": [("w", ARRAY("stdp_w0"))]},
        ],
        "monitors": [
            {"kind": "StateMonitor", "name": "state_neurons", "source": "neurons",
             "variables": ["v", "ge"], "record": [0], "record_every": 20},
            {"kind": "StateMonitor", "name": "state_stdp", "source": "stdp", "variables": ["w"],
             "record": [0, 1, 2, 3, 4], "record_every": 100},
            {"kind": "SpikeMonitor", "name": "spikes_neurons", "source": "neurons"},
            # checks that Brian2 emitted the stored input spikes in the stored steps (not stored)
            {"kind": "SpikeMonitor", "name": "spikes_inputs", "source": "inputs",
             "store": False, "equals": ("inputs_i", "inputs_step")},
        ],
    }


DELAY_NEURON = """dv/dt = (El - v + drive)/taum : volt (unless refractory)
drive : volt (constant)
"""
DELAY_SYNAPSE = """w : volt
dApre/dt = -Apre/taupre : 1 (event-driven)
dApost/dt = -Apost/taupost : 1 (event-driven)
"""
DELAY_ON_PRE = """v_post += w
Apre += dApre
w = clip(w + Apost*wmax, 0*mV, wmax)"""
DELAY_ON_POST = """Apost += dApost
w = clip(w + Apre*wmax, 0*mV, wmax)"""


def delays() -> dict:
    return {
        "name": "delays",
        "description": (
            "Ten LIF neurons with heterogeneous constant drive, all-to-all excitatory synapses "
            "with condition 'i != j' (90 synapses), per-synapse delays given as a string "
            "expression (1-4 ms), voltage jumps on_pre (v_post += w; v is (unless refractory), so "
            "Brian2 drops the jump for a target that is refractory, including one that spiked in "
            "the same step) and STDP-like traces with on_pre and on_post statements. euler for "
            "the neurons (the synapses have only event-driven variables), dt 0.1 ms, 1 s."
        ),
        "dt": "0.1*ms",
        "duration": "1*second",
        "namespace": [("taum", "10*ms"), ("El", "-70*mV"), ("Vt", "-50*mV"), ("Vr", "-65*mV"),
                      ("taupre", "15*ms"), ("taupost", "25*ms"), ("wmax", "3*mV"),
                      ("dApre", "0.02"), ("dApost", "-0.021")],
        "objects": [
            {"kind": "NeuronGroup", "name": "cells", "N": 10, "model": DELAY_NEURON,
             "threshold": "v > Vt", "reset": "v = Vr", "refractory": "2*ms", "method": "euler",
             "initial": [("drive", "18*mV + i*0.4*mV"), ("v", "El + i*1.5*mV")]},
            {"kind": "Synapses", "name": "rec", "source": "cells", "target": "cells",
             "model": DELAY_SYNAPSE, "on_pre": DELAY_ON_PRE, "on_post": DELAY_ON_POST,
             "method": None, "connect": {"condition": "i != j"},
             "delay": "(1 + (i + 2*j) % 4)*ms",
             "initial": [("w", "0.5*mV + ((3*i + j) % 5)*0.25*mV")]},
        ],
        "monitors": [
            {"kind": "StateMonitor", "name": "state_cells", "source": "cells",
             "variables": ["v"], "record": list(range(10)), "record_every": 10},
            {"kind": "StateMonitor", "name": "state_rec", "source": "rec", "variables": ["w"],
             "record": [0, 1, 9, 10, 45], "record_every": 10},
            {"kind": "SpikeMonitor", "name": "spikes_cells", "source": "cells"},
        ],
    }


def default_methods() -> dict:
    """No object names a method, so Brian picks one per object: `euler` for the nonlinear
    Morris-Lecar `pre`, `exact` for the synapse (linear in `s`; `v_pre` is held while it is
    integrated) and for the two-compartment passive `post` (a 2x2 linear system)."""
    pre_eqs = (
        "dv/dt = (-g_L*(v - V_L) - g_Ca*m_inf*(v - V_Ca) - g_K*n*(v - V_K) + I_app)/C : volt\n"
        + ML_GATING
    )
    post_eqs = (
        "dv/dt = (g_L*(V_L - v) + g_c*(vd - v) + I_syn)/C : volt\n"
        "dvd/dt = (g_L*(V_L - vd) + g_c*(v - vd))/C_d : volt\n"
        "I_syn : amp\n"
    )
    return {
        "name": "default_methods",
        "description": (
            "A Morris-Lecar `pre` (constant drive) -> graded synapse `pre_post` -> passive "
            "two-compartment `post`; no object names a method, so Brian picks one per object "
            "(recorded in `methods_chosen_by_brian`): euler, exact, exact."
        ),
        "dt": "0.025*ms",
        "duration": "300*ms",
        "namespace": ML_NAMESPACE
        + [
            ("I_app", "100*uA"),
            ("g_c", "1*mS"),
            ("C_d", "40*uF"),
            ("tau_s", "10*ms"),
            ("V_th", "-10*mV"),
            ("Delta", "5*mV"),
            ("E_syn", "0*mV"),
        ],
        "objects": [
            {"kind": "NeuronGroup", "name": "pre", "N": 1, "model": pre_eqs, **SPIKE,
             "method": None, "initial": [("v", "V_L"), ("n", "n_inf")]},
            {"kind": "NeuronGroup", "name": "post", "N": 1, "model": post_eqs,
             "method": None, "initial": [("v", "V_L"), ("vd", "V_L + 5*mV")]},
            {"kind": "Synapses", "name": "pre_post", "source": "pre", "target": "post",
             "model": GRADED_SYNAPSE.format(target="I_syn"), "on_pre": None, "on_post": None,
             "method": None, "connect": {"i": [0], "j": [0]}, "delay": None,
             "initial": [("g", "2*mS"), ("s", "0")]},
        ],
        "monitors": [
            {"kind": "StateMonitor", "name": "state_pre", "source": "pre", "variables": ["v"],
             "record": [0], "record_every": 8},
            {"kind": "StateMonitor", "name": "state_post", "source": "post",
             "variables": ["v", "vd", "I_syn"], "record": [0], "record_every": 8},
            {"kind": "StateMonitor", "name": "state_pre_post", "source": "pre_post",
             "variables": ["s"], "record": [0], "record_every": 8},
            {"kind": "SpikeMonitor", "name": "spikes_pre", "source": "pre"},
        ],
    }


def all_models() -> list[dict]:
    return [graded_pair("euler"), graded_pair("exponential_euler"), graded_pair("rk4"),
            three_cell(), coba(), stdp(), delays(), default_methods()]
