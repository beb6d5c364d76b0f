import sys

import ray

from lightning_compress.tuner.executors import RayExecutor, TrialSpec


def test_ray_executor_runs_trials_on_a_local_instance(tmp_path):
    """On a local 2-CPU Ray instance (``ray`` is in the ``dev`` extra, so this runs in the default suite)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(gpus_per_trial=0, cpus_per_trial=1)
        assert executor.n_workers == 2
        for i, code in enumerate(["json.dump({'val/accuracy': 0.5}, open(out, 'w'))", "sys.exit(2)"]):
            out = tmp_path / f"t{i}" / "result.json"
            script = f"import json, sys; out = {str(out)!r}\n{code}"
            executor.submit(TrialSpec(i, [sys.executable, "-c", script], str(out.parent), str(out)))
        outcomes = []
        while executor.pending:
            outcomes += executor.wait()
        by_id = {o.trial_id: o for o in sorted(outcomes, key=lambda o: o.trial_id)}
        assert by_id[0].status == "done" and by_id[0].metrics == {"val/accuracy": 0.5}
        assert by_id[1].status == "failed" and "exit code 2" in by_id[1].error
    finally:
        ray.shutdown()
