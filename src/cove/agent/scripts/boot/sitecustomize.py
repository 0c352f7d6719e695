"""A python code_run's sitecustomize: loads the chart capture when pyplot is imported.

Its directory is first on the run's PYTHONPATH. It only watches for
`import matplotlib.pyplot` and loads charts.py (precompiled in the staged
package) then, so runs that draw nothing load nothing; importing charts.py
itself here cost every run ~15 ms of imports and compiling.
"""

import os
import sys


class _CoveChartBoot:
    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.spec_from_file_location("_cove_charts", os.environ["COVE_CHARTS_PY"])
        assert spec is not None and spec.loader is not None
        charts = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(charts)
        return charts.install_code_run_capture(os.environ["COVE_CHART_DIR"]).find_spec(
            name, path, target
        )


def cove_install_chart_hook():
    # Also called by a zygote's run (zygote_worker.py), whose sitecustomize
    # ran once, at the zygote's start, before the run's chart directory existed.
    if os.environ.get("COVE_CHART_DIR") and os.environ.get("COVE_CHARTS_PY"):
        sys.meta_path.insert(0, _CoveChartBoot())


cove_install_chart_hook()
