"""Column names of recorded quantities, and reading them back."""
from ufm.records.schema import convergence_steps_column, steps_column, steps_column_parts


def test_steps_columns_read_back_as_quantity_and_eps():
    for q in ("nc1", "grad_norm", "gap", "orbit"):
        for eps in (1e-3, 1e-6, 1e-9, 0.5):
            assert steps_column_parts(steps_column(q, eps)) == (q, eps)
            assert steps_column_parts(convergence_steps_column(q, eps)) == (q, eps)
    for other in ("steps_recorded", "conv_steps_recorded", "conv_lr", "num_steps", "steps_"):
        assert steps_column_parts(other) is None
