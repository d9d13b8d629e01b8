import time, numpy as np
from cnnjax import data
from cnnjax.interpret import corruptions as C
ds = data.load("fashion_mnist")
x = ds.test_images[:1000]
for n in C.names():
    t=time.time()
    for sev in C.severities(n):
        y = C.corrupt(x, n, sev, seed=0)
        assert y.shape==x.shape and y.dtype==np.uint8
    print(f"{n:14s} {time.time()-t:6.2f}s  mean abs diff last {np.abs(y.astype(int)-x).mean():.1f}")
rgb = np.random.default_rng(0).integers(0,256,(3,32,32,3)).astype(np.uint8)
for n in C.names():
    y=C.corrupt(rgb,n); assert y.shape==rgb.shape
print("colour ok")
