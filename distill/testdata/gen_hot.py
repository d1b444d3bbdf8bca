#!/usr/bin/python3
"""Reference values for SoftTarget (T²·mean KL(p_T‖p_S)) and its gradient
T·(p_S − p_T)/N, and for ReverseKL (mean KL(p_S‖p_T)) and its gradient
p_S⊙(log p_S − log p_T − KL)/(T·N), and for GeneralizedJSD at β = 0.5
(mean β·KL(p_T‖M) + (1−β)·KL(p_S‖M), M = β·p_T + (1−β)·p_S) and its
gradient (1−β)·p_S⊙(log p_S − log M − KL(p_S‖M))/(T·N), at high temperatures, computed with mpmath at 60 digits
from the float32 inputs, so that float rounding in the reference is nil.
Writes hot.json next to this script. Run: /usr/bin/python3 gen_hot.py"""
import json, os
import numpy as np
import mpmath as mp

mp.mp.dps = 60

def softmax(row, T):
    xs = [mp.mpf(float(x)) / T for x in row]
    m = max(xs)
    es = [mp.e ** (x - m) for x in xs]
    z = sum(es)
    return [e / z for e in es]

def case(name, student, teacher, T):
    n, v = student.shape
    T = mp.mpf(T)
    loss = mp.mpf(0)
    rev = mp.mpf(0)
    grad, rgrad, jgrad = [], [], []
    beta = mp.mpf("0.5")
    jsd = mp.mpf(0)
    for i in range(n):
        ps, pt = softmax(student[i], T), softmax(teacher[i], T)
        kl = sum(pt[k] * (mp.log(pt[k]) - mp.log(ps[k])) for k in range(v) if pt[k] > 0)
        rkl = sum(ps[k] * (mp.log(ps[k]) - mp.log(pt[k])) for k in range(v) if ps[k] > 0)
        loss += kl
        rev += rkl
        grad += [float(T * (ps[k] - pt[k]) / n) for k in range(v)]
        rgrad += [float(ps[k] * (mp.log(ps[k]) - mp.log(pt[k]) - rkl) / (T * n)) for k in range(v)]
        m = [beta * pt[k] + (1 - beta) * ps[k] for k in range(v)]
        klt = sum(pt[k] * (mp.log(pt[k]) - mp.log(m[k])) for k in range(v) if pt[k] > 0)
        kls = sum(ps[k] * (mp.log(ps[k]) - mp.log(m[k])) for k in range(v) if ps[k] > 0)
        jsd += beta * klt + (1 - beta) * kls
        jgrad += [float((1 - beta) * ps[k] * (mp.log(ps[k]) - mp.log(m[k]) - kls) / (T * n)) for k in range(v)]
    loss = T * T * loss / n
    return dict(Name=name, N=n, V=v, T=float(T),
                Student=[float(x) for x in student.ravel()],
                Teacher=[float(x) for x in teacher.ravel()],
                Loss=float(loss), Grad=grad, RevLoss=float(rev / n), RevGrad=rgrad,
                JSDLoss=float(jsd / n), JSDGrad=jgrad)

rng = np.random.default_rng(20)
s = rng.normal(0, 2, (2, 7)).astype(np.float32)
t = rng.normal(0, 2, (2, 7)).astype(np.float32)
cases = [case(f"random T={T:g}", s, t, T) for T in [1, 2, 4, 8, 9, 64, 1e3, 1e4, 1e6, 1e8]]
big = (rng.normal(0, 1, (3, 50)) * 300).astype(np.float32)
bigt = (big + rng.normal(0, 1, (3, 50)) * 30).astype(np.float32)
cases += [case(f"wide T={T:g}", big, bigt, T) for T in [16, 1e5]]
far_s = np.zeros((1, 7), np.float32)
far_t = np.array([[1e5, 0, 0, -3, 0, 2, 0]], np.float32)
cases.append(case("far apart T=10", far_s, far_t, 10))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hot.json"), "w") as f:
    json.dump(cases, f, indent=1)
