/* The C reference loop of `cargo xtask bench sim`: the same work as the simulator's
 * equation-string path on HH model B (sbi tutorial, 5 states with the M-current) or HH model
 * C (Brian2's SBI example, 4 states), written the way a performance-minded C programmer
 * would: structure of arrays, time outer, neurons inner, exponential Euler, `exprel` via
 * `expm1`, spike = upward crossing of -20 mV, no recording.
 *
 * Build: cc -O3 -march=native -ffast-math hh_loop.c -o hh_loop -lm
 * Usage: hh_loop b|c N_NEURONS N_STEPS DT_SECONDS AMP_AMPERE T_ON T_OFF [COUNTS_FILE]
 * Prints the loop's own wall time in seconds and the total spike count; with COUNTS_FILE
 * writes one spike count per neuron, one per line.
 *
 * Parameters (gNa, gK) are spread over each model's prior exactly as the Rust side does:
 * u = frac(k * 0.61803398875), w = frac(k * 0.41421356237). */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double frac(double x) { return x - floor(x); }

/* x / (exp(x) - 1) with its limit 1 at 0. */
static inline double efun(double x) { return x == 0.0 ? 1.0 : x / expm1(x); }

/* Exponential Euler: dx/dt = a x + b over dt. */
static inline double exp_euler(double x, double a, double b, double dt) {
    double ba = b / a;
    return -ba + (x + ba) * exp(a * dt);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s b|c N STEPS DT AMP T_ON T_OFF [COUNTS_FILE]\n", argv[0]);
        return 2;
    }
    const int model_b = strcmp(argv[1], "b") == 0;
    const long n = atol(argv[2]);
    const long steps = atol(argv[3]);
    const double dt_s = atof(argv[4]);
    const double amp = atof(argv[5]);
    const double t_on = atof(argv[6]), t_off = atof(argv[7]);
    const double dt = dt_s * 1e3; /* ms */

    /* Units: mV, ms, and per model either mS/cm^2 and uA/cm^2 (B) or uS and nA (C), so
     * dv/dt is in mV/ms with C_m in uF/cm^2 (B) or nF (C). */
    const double vt = -60.0, ena = 53.0, ek = -107.0, el = -70.0;
    const double gl = model_b ? 0.1 : 0.01, cm = model_b ? 1.0 : 0.2;
    const double gm = 0.07, tau_max = 600.0;
    const double area_cm2 = 3.141592653589793 * 70e-4 * 70e-4;
    /* The stimulus in the model's current unit: uA/cm^2 (B) or nA (C). */
    const double i_amp = model_b ? amp * 1e6 / area_cm2 : amp * 1e9;

    double *v = malloc(n * sizeof *v), *m = malloc(n * sizeof *m), *h = malloc(n * sizeof *h);
    double *nn = malloc(n * sizeof *nn), *p = malloc(n * sizeof *p);
    double *gna = malloc(n * sizeof *gna), *gk = malloc(n * sizeof *gk);
    int *count = calloc(n, sizeof *count);
    for (long k = 0; k < n; k++) {
        double u = frac(k * 0.61803398875), w = frac(k * 0.41421356237);
        /* Priors: B in mS/cm^2, C in uS (the same numbers). */
        gna[k] = 0.5 + 79.5 * u;
        gk[k] = 1e-4 + 14.9999 * w;
        v[k] = -70.0;
        m[k] = 0.0016756870247372421;
        h[k] = 0.999683549119298;
        nn[k] = 0.0065401365257684516;
        p[k] = 0.02931223075135632;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long s = 0; s < steps; s++) {
        const double t = s * dt_s;
        const double i_ext = (t >= t_on && t < t_off) ? i_amp : 0.0;
        for (long k = 0; k < n; k++) {
            const double vk = v[k], u = vk - vt;
            const double am = 1.28 * efun((13.0 - u) / 4.0);
            const double bm = 1.4 * efun((u - 40.0) / 5.0);
            const double an = 0.16 * efun((15.0 - u) / 5.0);
            const double bn = 0.5 * exp((10.0 - u) / 40.0);
            const double ah = 0.128 * exp((17.0 - u) / 18.0);
            const double bh = 4.0 / (1.0 + exp((40.0 - u) / 5.0));
            const double m3h = m[k] * m[k] * m[k] * h[k];
            const double n2 = nn[k] * nn[k], n4 = n2 * n2;
            double g = gl + gna[k] * m3h + gk[k] * n4;
            double e = gl * el + gna[k] * m3h * ena + gk[k] * n4 * ek + i_ext;
            if (model_b) {
                const double pinf = 1.0 / (1.0 + exp(-(vk + 35.0) / 10.0));
                const double taup =
                    tau_max / (3.3 * exp((vk + 35.0) / 20.0) + exp(-(vk + 35.0) / 20.0));
                g += gm * p[k];
                e += gm * p[k] * ek;
                p[k] = exp_euler(p[k], -1.0 / taup, pinf / taup, dt);
            }
            const double vn = exp_euler(vk, -g / cm, e / cm, dt);
            m[k] = exp_euler(m[k], -(am + bm), am, dt);
            h[k] = exp_euler(h[k], -(ah + bh), ah, dt);
            nn[k] = exp_euler(nn[k], -(an + bn), an, dt);
            v[k] = vn;
            count[k] += (vk <= -20.0) & (vn > -20.0);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long total = 0;
    for (long k = 0; k < n; k++) total += count[k];
    printf("%.9f %ld\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), total);
    if (argc > 8) {
        FILE *f = fopen(argv[8], "w");
        if (!f) { perror(argv[8]); return 1; }
        for (long k = 0; k < n; k++) fprintf(f, "%d\n", count[k]);
        fclose(f);
    }
    return 0;
}
