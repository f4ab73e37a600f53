"""A per-image gain by the image's own predicted colourfulness, against one gain.
per_image.py OUTDIR TRUTHDIR RATIO"""
import sys, numpy as np
from shapes import load, to_rgb, cf, psnr
out, truth, ratio = sys.argv[1], sys.argv[2], float(sys.argv[3])
data, truth_cf = load(out, truth)
target=ratio*truth_cf
print(f"truth CF {truth_cf:.2f}, target {target:.2f}")
base=[cf(to_rgb(np.concatenate([L[...,None],ab],-1))) for T,L,ab in data]
def score2(a,k):
    ps=[];cs=[]
    for (T,L,ab),c in zip(data,base):
        g=1+a*(max(c,1.0)/np.mean(base))**(-k)
        rgb=to_rgb(np.concatenate([L[...,None],ab*g],-1)); ps.append(psnr(rgb,T)); cs.append(cf(rgb))
    return np.mean(ps),np.mean(cs)
for k in [0,0.5,1,-0.5]:
    a0,c0=0.0,np.mean(base); a1=0.28; p1,c1=score2(a1,k)
    for _ in range(8):
        if abs(c1-target)<0.05: break
        a2=a1+(target-c1)*(a1-a0)/(c1-c0); a0,c0=a1,c1; a1=a2; p1,c1=score2(a1,k)
    print(f"k {k}: a {a1:.4f} PSNR {p1:.3f} CF {c1:.2f}",flush=True)
