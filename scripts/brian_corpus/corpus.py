"""The corpus: single-NeuronGroup models of Brian2's examples and brian2modelfitting's
examples, copied verbatim (equations, threshold, reset, refractory, method, initial values).

`generate.py` checks that every equation string occurs in its source file at the recorded
commit (so a copy cannot drift from its source) and runs each model in Brian2 2.11.

Per entry: `namespace` and `params` are Brian expressions (evaluated with Brian's units);
`params` set per-neuron parameters as the example's script does for one of its neurons;
`initial` are the example's state assignments, in its order; `inputs` are TimedArrays
(or Inferencer inputs) written as step functions `[(from_time, value), ...]` sampled on dt.
"""

BRIAN2 = ("brian-team/brian2", "aec54d2afae3621f42be2a7030b9bb6f21488571")
MODELFITTING = ("brian-team/brian2modelfitting", "3a0e8c92658226e0e8d9aacf44eff1d1c78b9433")

HH_SBI_EQS = '''
    dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
    dm/dt = 0.32*(mV**-1)*(13.*mV-v+VT)/
            (exp((13.*mV-v+VT)/(4.*mV))-1.)/ms*(1-m)-0.28*(mV**-1)*(v-VT-40.*mV)/
            (exp((v-VT-40.*mV)/(5.*mV))-1.)/ms*m : 1
    dn/dt = 0.032*(mV**-1)*(15.*mV-v+VT)/
            (exp((15.*mV-v+VT)/(5.*mV))-1.)/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
    dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1

    g_na : siemens (constant)
    g_kd : siemens (constant)
    gl   : siemens (constant)
    Cm   : farad (constant)
    '''

CORPUS = [
    dict(
        name="IF_curve_LIF", source=BRIAN2, path="examples/IF_curve_LIF.py",
        equations='''
dv/dt = (v0 - v) / tau : volt (unless refractory)
v0 : volt
''',
        threshold="v > 10*mV", reset="v = 0*mV", refractory="5*ms", method="exact",
        namespace={"tau": "10*ms"}, params={"v0": "15*mV"}, initial=[("v", "0*mV")],
        dt="0.1*ms", duration="300*ms", record="v",
    ),
    dict(
        name="IF_curve_Hodgkin_Huxley", source=BRIAN2, path="examples/IF_curve_Hodgkin_Huxley.py",
        equations='''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV-v+VT)/(4*mV))/ms*(1-m)-0.28*(mV**-1)*5*mV/exprel((v-VT-40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV-v+VT)/(5*mV))/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
I : amp
''',
        threshold="v > -40*mV", reset=None, refractory="v > -40*mV", method="exponential_euler",
        namespace={"area": "20000*umetre**2", "Cm": "1*ufarad*cm**-2 * 20000*umetre**2",
                   "gl": "5e-5*siemens*cm**-2 * 20000*umetre**2", "El": "-65*mV",
                   "EK": "-90*mV", "ENa": "50*mV",
                   "g_na": "100*msiemens*cm**-2 * 20000*umetre**2",
                   "g_kd": "30*msiemens*cm**-2 * 20000*umetre**2", "VT": "-63*mV"},
        params={"I": "0.35*nA"}, initial=[("v", "El")],
        dt="0.1*ms", duration="200*ms", record="v",
    ),
    dict(
        name="Brette_Gerstner_2005", source=BRIAN2, path="examples/frompapers/Brette_Gerstner_2005.py",
        equations="""
dvm/dt = (gL*(EL - vm) + gL*DeltaT*exp((vm - VT)/DeltaT) + I - w)/C : volt
dw/dt = (a*(vm - EL) - w)/tauw : amp
I : amp
""",
        threshold="vm>Vcut", reset="vm=Vr; w+=b", refractory=None, method="euler",
        namespace={"C": "281 * pF", "gL": "30 * nS", "EL": "-70.6 * mV", "VT": "-50.4 * mV",
                   "DeltaT": "2 * mV", "Vcut": "-50.4*mV + 5 * 2*mV", "tauw": "144*ms",
                   "a": "4*nS", "b": "0.0805*nA", "Vr": "-70.6*mV"},
        params={"I": "1*nA"}, initial=[("vm", "EL")],
        dt="0.1*ms", duration="100*ms", record="vm",
    ),
    dict(
        name="Hindmarsh_Rose_1984", source=BRIAN2, path="examples/frompapers/Hindmarsh_Rose_1984.py",
        equations='''
dx/dt = (y - a*x**3 + b*x**2 + I - z)/time_unit : 1
dy/dt = (c - d*x**2 - y)/time_unit : 1
dz/dt = r*(s*(x - x_1) - z)/time_unit : 1
I : 1 (constant)
''',
        threshold=None, reset=None, refractory=None, method="rk4",
        namespace={"time_unit": "1*ms", "x_1": "-1.6", "a": "1", "b": "3", "c": "1", "d": "5",
                   "r": "0.001", "s": "4"},
        params={"I": "2"}, initial=[("x", "x_1"), ("y", "c - d*x**2"), ("z", "r*(s*(x - x_1))")],
        dt="0.1*ms", duration="200*ms", record="x", tolerance=1e-3,
    ),
    dict(
        name="Wang_Buszaki_1996", source=BRIAN2, path="examples/frompapers/Wang_Buszaki_1996.py",
        equations='''
dv/dt = (-gNa*m**3*h*(v-ENa)-gK*n**4*(v-EK)-gL*(v-EL)+Iapp)/Cm : volt
m = alpha_m/(alpha_m+beta_m) : 1
alpha_m = 0.1/mV*10*mV/exprel(-(v+35*mV)/(10*mV))/ms : Hz
beta_m = 4*exp(-(v+60*mV)/(18*mV))/ms : Hz
dh/dt = 5*(alpha_h*(1-h)-beta_h*h) : 1
alpha_h = 0.07*exp(-(v+58*mV)/(20*mV))/ms : Hz
beta_h = 1./(exp(-0.1/mV*(v+28*mV))+1)/ms : Hz
dn/dt = 5*(alpha_n*(1-n)-beta_n*n) : 1
alpha_n = 0.01/mV*10*mV/exprel(-(v+34*mV)/(10*mV))/ms : Hz
beta_n = 0.125*exp(-(v+44*mV)/(80*mV))/ms : Hz
''',
        threshold=None, reset=None, refractory=None, method="exponential_euler",
        namespace={"Cm": "1*uF", "Iapp": "2*uA", "gL": "0.1*msiemens", "EL": "-65*mV",
                   "ENa": "55*mV", "EK": "-90*mV", "gNa": "35*msiemens", "gK": "9*msiemens"},
        params={}, initial=[("v", "-70*mV"), ("h", "1")],
        dt="0.01*ms", duration="100*ms", record="v",
    ),
    dict(
        name="Morris_Lecar_1981", source=BRIAN2, path="examples/frompapers/Morris_Lecar_1981.py",
        equations='''
dV/dt = (-g_L*(V - V_L) - g_Ca*m_inf*(V - V_Ca) - g_K*n*(V - V_K) + I)/C : volt
dn/dt = lambda_n*(n_inf - n) : 1
m_inf = 0.5*(1 + tanh((V - V_1)/V_2)) : 1
n_inf = 0.5*(1 + tanh((V - V_3)/V_4)) : 1
lambda_n = lambda_n__max*cosh((V - V_3)/(2*V_4)) : Hz
I : amp
''',
        threshold=None, reset=None, refractory=None, method="exponential_euler",
        namespace={"g_L": "2*mS", "g_Ca": "4*mS", "g_K": "8*mS", "V_L": "-50*mV",
                   "V_Ca": "100*mV", "V_K": "-70*mV", "lambda_n__max": "1.0/(15*ms)",
                   "V_1": "10*mV", "V_2": "15*mV", "V_3": "-1*mV", "V_4": "14.5*mV",
                   "C": "20*uF"},
        params={"I": "400*uA"}, initial=[("V", "V_L"), ("n", "n_inf")],
        dt="0.01*ms", duration="220*ms", record="V",
    ),
    dict(
        name="Touboul_Brette_2008", source=BRIAN2, path="examples/frompapers/Touboul_Brette_2008.py",
        equations="""
dvm/dt=(gL*(EL-vm)+gL*DeltaT*exp((vm-VT)/DeltaT)+I-w)/C : volt
dw/dt=(a*(vm-EL)-w)/tauw : amp
Vr:volt
""",
        threshold="vm > Vcut", reset="vm = Vr; w += b", refractory=None, method="euler",
        namespace={"C": "281*pF", "gL": "30*nS", "EL": "-70.6*mV", "VT": "-50.4*mV",
                   "DeltaT": "2*mV", "tauw": "40*ms", "a": "4*nS", "b": "0.08*nA",
                   "I": ".8*nA", "Vcut": "-50.4*mV + 5 * 2*mV"},
        params={"Vr": "-48*mV"}, initial=[("vm", "EL"), ("w", "a * (vm - EL)")],
        dt="0.01*ms", duration="100*ms", record="vm",
    ),
    dict(
        name="modelfitting_sbi", source=BRIAN2, path="examples/advanced/modelfitting_sbi.py",
        equations='''
         dVm/dt = -(gNa*m**3*h*(Vm - ENa) + gK*n**4*(Vm - EK) + gleak*(Vm - Eleak) - I_inj) / C : volt
         I_inj = int(t >= t_on and t < t_off)*I : amp (shared)
         dm/dt = alpham*(1-m) - betam*m : 1
         dn/dt = alphan*(1-n) - betan*n : 1
         dh/dt = alphah*(1-h) - betah*h : 1

         alpham = (-0.32/mV) * (Vm - VT - 13.*mV) / (exp((-(Vm - VT - 13.*mV))/(4.*mV)) - 1)/ms : Hz
         betam = (0.28/mV) * (Vm - VT - 40.*mV) / (exp((Vm - VT - 40.*mV)/(5.*mV)) - 1)/ms : Hz

         alphah = 0.128 * exp(-(Vm - VT - 17.*mV) / (18.*mV))/ms : Hz
         betah = 4/(1 + exp((-(Vm - VT - 40.*mV)) / (5.*mV)))/ms : Hz

         alphan = (-0.032/mV) * (Vm - VT - 15.*mV) / (exp((-(Vm - VT - 15.*mV)) / (5.*mV)) - 1)/ms : Hz
         betan = 0.5*exp(-(Vm - VT - 10.*mV) / (40.*mV))/ms : Hz
         # The parameters to fit
         gNa : siemens (constant)
         gK : siemens (constant)
         ''',
        threshold="m>0.5", reset=None, refractory="m>0.5", method="exponential_euler",
        namespace={"gleak": "10*nS", "Eleak": "-70*mV", "VT": "-60.0*mV", "C": "200*pF",
                   "ENa": "53*mV", "EK": "-107*mV", "I": "1*nA", "t_on": "50*ms",
                   "t_off": "300*ms"},
        params={"gNa": "32*uS", "gK": "1*uS"},
        initial=[("Vm", "Eleak"), ("m", "1/(1 + betam/alpham)"), ("h", "1/(1 + betah/alphah)"),
                 ("n", "1/(1 + betan/alphan)")],
        dt="0.05*ms", duration="350*ms", record="Vm",
    ),
    dict(
        name="IF_sbi", source=MODELFITTING, path="examples/IF_sbi.py",
        equations='''
    dv/dt = (gl*(El - v) + gl*DeltaT*exp((v - VT) / DeltaT) + I(t)) / C : volt
    gl    : siemens (constant)
    C     : farad (constant)
    ''',
        threshold="v > -50 * mV", reset="v = -70 * mV", refractory=None,
        method="exponential_euler",
        namespace={"El": "-70*mV", "VT": "-50*mV", "DeltaT": "2*mV"},
        params={"gl": "30*nS", "C": "1*nF"}, initial=[("v", "-70*mV")],
        inputs={"I": dict(unit="amp", steps=[("0*ms", "0*nA"), ("5*ms", "10*nA"), ("30*ms", "0*nA")])},
        dt="0.1*ms", duration="60*ms", record="v",
    ),
    dict(
        name="hh_sbi_simple_interface", source=MODELFITTING,
        path="examples/hh_sbi_simple_interface.py",
        equations=HH_SBI_EQS, threshold=None, reset=None, refractory=None,
        method="exponential_euler",
        namespace={"El": "-65*mV", "EK": "-90*mV", "ENa": "50*mV", "VT": "-63*mV"},
        params={"g_na": "20*uS", "g_kd": "6*uS", "gl": "10*nS", "Cm": "200*pF"},
        initial=[("v", "El")],
        inputs={"I": dict(unit="amp", steps=[("0*ms", "0*nA"), ("10*ms", "0.5*nA"), ("70*ms", "0*nA")])},
        dt="0.01*ms", duration="100*ms", record="v",
    ),
]
