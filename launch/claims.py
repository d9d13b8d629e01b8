"""What the course-claim studies (launch/claim_*.py) share: the small Fashion-MNIST budget.

SMALL BY DEFAULT, to fit a shared 2-core CPU: the first 10,000 training images (the full
10,000-image test set), 3 epochs, Adam 1e-3, batch 128, seeds 0,1,2.  ``--base=num_train=0,epochs=15``
turns any study into the full-size one (~30x longer).
"""
from launch import sweep

SEEDS = "0,1,2"
SMALL_BASE = "dataset=fashion_mnist,num_train=10000,epochs=3,batch_size=128,learning_rate=1e-3,optimizer=adam"


def padded_cnn_study(name: str, grid: str):
    """(stages, main) of a one-grid study on padded_cnn: ``stages(base)`` expands it for tests and
    dry runs, ``main()`` runs it through :func:`launch.sweep.study`."""
    base = f"model=padded_cnn,{SMALL_BASE}"

    def stages(extra_base: str = "") -> list[sweep.Stage]:
        """The study's sweep stages (``extra_base`` merged over the study's base, as --base does)."""
        return [sweep.make_stage(grid, extra_base, SEEDS, base)]

    def main() -> None:
        sweep.study(name, grid, SEEDS, base, curves=True)

    return stages, main
