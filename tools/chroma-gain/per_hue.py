"""Per-hue chroma gains (least squares on one half of the holdout, scored on the other) against one gain.
per_hue.py OUTDIR TRUTHDIR RATIO K"""
import sys, numpy as np
from shapes import load, to_lab, to_rgb, cf, psnr
out, truth, ratio = sys.argv[1], sys.argv[2], float(sys.argv[3])
data, _ = load(out, truth)
K=int(sys.argv[4])
def weights(ab):
    h=np.arctan2(ab[...,1],ab[...,0])%(2*np.pi); x=h/(2*np.pi)*K; i0=np.floor(x).astype(int)%K; f=x-np.floor(x)
    return i0,(i0+1)%K,1-f,f
def gainmap(ab,g):
    i0,i1,w0,w1=weights(ab); return (w0*g[i0]+w1*g[i1])[...,None]
tdata=[(T,L,ab,to_lab(T)[...,1:]) for T,L,ab in data]
def fit(sub):
    A=np.zeros((K,K)); b=np.zeros(K); c=np.zeros(K)
    for T,L,p,t in sub:
        i0,i1,w0,w1=weights(p); pp=(p**2).sum(-1); pt=(p*t).sum(-1); pm=np.sqrt(pp)
        for ia,wa in ((i0,w0),(i1,w1)):
            b+=np.bincount(ia.ravel(),(wa*pt).ravel(),K); c+=np.bincount(ia.ravel(),(wa*pm).ravel(),K)
            for ib,wb in ((i0,w0),(i1,w1)):
                np.add.at(A,(ia.ravel(),ib.ravel()),(wa*wb*pp).ravel())
    return A+1e-6*np.eye(K)*A.trace()/K,b,c
def run(sub,g):
    ps=[];cs=[]
    for T,L,p,t in sub:
        rgb=to_rgb(np.concatenate([L[...,None],p*gainmap(p,g)],-1)); ps.append(psnr(rgb,T)); cs.append(cf(rgb))
    return np.mean(ps),np.mean(cs)
def match(sub,family,target,x0,x1):
    p0,c0=run(sub,family(x0)); p1,c1=run(sub,family(x1))
    for _ in range(8):
        if abs(c1-target)<0.05: break
        x2=x1+(target-c1)*(x1-x0)/(c1-c0); x0,c0=x1,c1; x1=x2; p1,c1=run(sub,family(x1))
    return x1,p1,c1
halves=[tdata[0::2],tdata[1::2]]
for k,(fitset,test) in enumerate([(halves[0],halves[1]),(halves[1],halves[0])]):
    target=ratio*np.mean([cf(T) for T,_,_,_ in test])
    A,b,c=fit(fitset); ls=np.linalg.solve(A,b)
    print(f"half {k}: LS per-hue gains {np.round(ls,2)}")
    p1,c1=run(test,np.ones(K)); print(f"  gain 1: PSNR {p1:.3f} CF {c1:.2f} target {target:.2f}")
    x,p,cc=match(test,lambda m:np.ones(K)*m,target,1.0,1.3); print(f"  one gain {x:.4f}: PSNR {p:.3f} CF {cc:.2f}")
    # the gain for the target fitted on the fitting half, applied to the test half (honest)
    tf=ratio*np.mean([cf(T) for T,_,_,_ in fitset])
    fam=lambda lam:np.linalg.solve(A,b+lam*c/2)
    lam,_,_=match(fitset,fam,tf,0.0,float(np.abs(b).sum()/np.abs(c).sum())); pf,cfv=run(test,fam(lam))
    xg,_,_=match(fitset,lambda m:np.ones(K)*m,tf,1.0,1.3); pg,cg=run(test,np.ones(K)*xg)
    print(f"  fitted on the other half -> one gain {xg:.4f}: PSNR {pg:.3f} CF {cg:.2f};  per-hue {np.round(fam(lam),2)}: PSNR {pf:.3f} CF {cfv:.2f}",flush=True)
