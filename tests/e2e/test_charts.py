"""Stateless `code_run` returns matplotlib figures in `artifacts.charts`, in the
shape the official SDK parses into its typed chart classes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(300)
def test_line_chart_from_the_sdk_docstring(sandbox: Any) -> None:
    from daytona.common.charts import ChartType, LineChart

    code = """
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 10, 30)
y = np.sin(x)

plt.figure(figsize=(8, 5))
plt.plot(x, y, 'b-', linewidth=2, label='sin')
plt.title('Line Chart')
plt.xlabel('X-axis (seconds)')
plt.ylabel('Y-axis (amplitude)')
plt.grid(True)
plt.show()
print('done')
"""
    response = sandbox.process.code_run(code)
    assert response.exit_code == 0, response.result
    assert response.result == "done\n"
    (chart,) = response.artifacts.charts
    assert chart.type == ChartType.LINE and isinstance(chart, LineChart)
    assert chart.title == "Line Chart"
    assert chart.x_label == "X-axis (seconds)" and chart.y_label == "Y-axis (amplitude)"
    assert chart.x_scale == "linear" and chart.y_scale == "linear"
    assert chart.x_ticks and len(chart.x_ticks) == len(chart.x_tick_labels)
    assert chart.y_ticks and chart.y_tick_labels
    (line,) = chart.elements
    assert line.label == "sin" and len(line.points) == 30
    assert line.points[0] == [0.0, 0.0]
    assert base64.b64decode(chart.png).startswith(PNG_MAGIC)


def test_bar_scatter_pie_and_composite(sandbox: Any) -> None:
    from daytona.common.charts import BarChart, ChartType, CompositeChart, PieChart, ScatterChart

    code = """
import matplotlib.pyplot as plt
plt.bar(['apples', 'pears'], [3, 5], label='fruit')
plt.title('Bars')
plt.show()
plt.scatter([1, 2, 3], [3, 2, 1], label='dots')
plt.show()
plt.pie([1, 3], labels=['small', 'big'])
plt.show()
fig, (a, b) = plt.subplots(1, 2)
a.plot([1, 2], [3, 4])
b.bar(['x'], [1])
fig.suptitle('Both')
"""  # the last figure is never shown: it is still open at exit
    response = sandbox.process.code_run(code)
    assert response.exit_code == 0, response.result
    bar, scatter, pie, composite = response.artifacts.charts
    assert isinstance(bar, BarChart) and bar.title == "Bars"
    assert [(e.label, e.value, e.group) for e in bar.elements] == [
        ("apples", "3", "fruit"),
        ("pears", "5", "fruit"),
    ]
    assert isinstance(scatter, ScatterChart)
    assert scatter.elements[0].points == [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
    assert isinstance(pie, PieChart)
    assert [e.label for e in pie.elements] == ["small", "big"]
    assert abs(sum(e.angle for e in pie.elements) - 360) < 1e-6
    assert isinstance(composite, CompositeChart) and composite.title == "Both"
    assert [e.type for e in composite.elements] == [ChartType.LINE, ChartType.BAR]


def test_no_figures_no_charts_and_errors_still_return_them(sandbox: Any) -> None:
    assert sandbox.process.code_run("print(1)").artifacts.charts == []
    response = sandbox.process.code_run(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nraise SystemExit(3)"
    )
    assert response.exit_code == 3
    assert len(response.artifacts.charts) == 1
