"""Chroma curves applied to a model's outputs, scored at matched colourfulness
(docs/experiments/2026-11-26-frozen-recipe-holdout.md).
shapes.py OUTDIR TRUTHDIR RATIO: OUTDIR holds `tinct colorize --format png` outputs at gain 1 of the
colour images in TRUTHDIR (matched by file stem). Prints PSNR and colourfulness (numpy, as tinct
computes them; large images are subsampled) for one chroma gain and for vibrance curves
c' = c + a c / (c + eps), each at the strength that gives RATIO x the truth's colourfulness.
per_image.py and per_hue.py import its loading and colour code (`load`, `to_lab`, `to_rgb`, `cf`,
`psnr`)."""
import sys, os, numpy as np
from PIL import Image
M = np.array([[0.4124564,0.3575761,0.1804375],[0.2126729,0.7151522,0.0721750],[0.0193339,0.1191920,0.9503041]])
Mi = np.linalg.inv(M); WP = np.array([0.95047,1.0,1.08883])
def lin(c): return np.where(c<=0.04045, c/12.92, ((c+0.055)/1.055)**2.4)
def gam(c): return np.where(c<=0.0031308, 12.92*c, 1.055*np.clip(c,0,None)**(1/2.4)-0.055)
def f(t): return np.where(t>(6/29)**3, np.cbrt(t), t/(3*(6/29)**2)+4/29)
def fi(t): return np.where(t>6/29, t**3, 3*(6/29)**2*(t-4/29))
def to_lab(rgb):
    xyz = lin(rgb)@M.T/WP; fx,fy,fz = f(xyz[...,0]),f(xyz[...,1]),f(xyz[...,2])
    return np.stack([116*fy-16, 500*(fx-fy), 200*(fy-fz)],-1)
def to_rgb(lab):
    fy=(lab[...,0]+16)/116; fx=fy+lab[...,1]/500; fz=fy-lab[...,2]/200
    xyz=np.stack([fi(fx),fi(fy),fi(fz)],-1)*WP
    return np.clip(gam(xyz@Mi.T),0,1)
def cf(rgb):
    r,g,b=[rgb[...,i]*255 for i in range(3)]; rg=r-g; yb=0.5*(r+g)-b
    return np.hypot(rg.std(),yb.std())+0.3*np.hypot(rg.mean(),yb.mean())
def psnr(a,b):
    mse=((np.round(a*255)-np.round(b*255))**2).mean(); return 10*np.log10(255**2/max(mse,1e-10))
def load(out, truth):
    """(truth RGB, truth L, predicted ab) for each output in `out`, and the truth's mean CF."""
    data=[]
    for n in sorted(os.listdir(out)):
        stem=os.path.splitext(n)[0]
        t=[x for x in os.listdir(truth) if os.path.splitext(x)[0]==stem][0]
        T=np.asarray(Image.open(os.path.join(truth,t)).convert("RGB"),dtype=np.float64)/255
        O=np.asarray(Image.open(os.path.join(out,n)).convert("RGB"),dtype=np.float64)/255
        # subsample large images for speed
        s=max(1,int(np.sqrt(T.shape[0]*T.shape[1]/250000)))
        T=T[::s,::s]; O=O[::s,::s]
        lo=to_lab(O); lt=to_lab(T)
        data.append((T, lt[...,0], lo[...,1:]))
    return data, np.mean([cf(T) for T,_,_ in data])
def apply(ab, a, eps):
    c=np.hypot(ab[...,0],ab[...,1])[...,None]
    if eps is None: return ab*(1+a)
    return ab*(1+a/(c+eps))
def score(data, a, eps):
    ps=[];cs=[]
    for T,L,ab in data:
        rgb=to_rgb(np.concatenate([L[...,None],apply(ab,a,eps)],-1))
        ps.append(psnr(rgb,T)); cs.append(cf(rgb))
    return np.mean(ps), np.mean(cs)
def main():
    out, truth, ratio = sys.argv[1], sys.argv[2], float(sys.argv[3])
    data, truth_cf = load(out, truth)
    target=ratio*truth_cf
    print(f"truth CF {truth_cf:.2f}, target {target:.2f}")
    p0,c0=score(data,0,None); print(f"gain 1: PSNR {p0:.3f} CF {c0:.2f}")
    for eps in [None, 40, 20, 10, 5, 2]:
        a0,c_0=0.0,c0; a1=(target/c0-1) if eps is None else 5.0; p1,c1=score(data,a1,eps)
        for _ in range(8):
            if abs(c1-target)<0.05: break
            a2=a1+(target-c1)*(a1-a0)/(c1-c_0); a0,c_0=a1,c1; a1=a2; p1,c1=score(data,a1,eps)
        print(f"eps {eps}: a {a1:.4f}  PSNR {p1:.3f} CF {c1:.2f}", flush=True)
if __name__ == "__main__":
    main()
