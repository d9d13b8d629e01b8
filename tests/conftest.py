"""Run the test process with the XLA CPU settings ``experiments.train`` uses
(``xla_cpu.configure()``, before JAX starts), so a run trained in-process and one
trained by the CLI in a subprocess compile the same way and can be compared bit for bit."""
from cnnjax import xla_cpu

xla_cpu.configure()
