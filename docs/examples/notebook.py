# %% [markdown]
# # nndiag in a notebook
#
# This file is a notebook in the "percent" format: Jupyter (with jupytext), VS Code and PyCharm
# open it as cells, and `python docs/examples/notebook.py` runs it as a script. The tests run it
# (`tests/test_notebook.py`), so what it shows is what nndiag does. Run it from the repository root.

# %%
import nndiag

help(nndiag)  # the API: check, check_probe, watch, read_csv, the result types

# %% [markdown]
# Check a model file. In a notebook cell, leaving `report` as the cell's last line shows the
# HTML report inline (`Report._repr_html_`); `print(report)` shows the terminal table.

# %%
report = nndiag.check("reference_models/xor.py", threads=1)
print(report)

# %%
report  # in Jupyter: the HTML report, with its plots

# %% [markdown]
# Every finding in full, and the run metadata (versions, device, threads, seed, command, host):

# %%
print(report.summary(verbose=True))
print(report.metadata["torch"], report.metadata["seed"], report.metadata["threads"])

# %% [markdown]
# The long-form table (one row per finding and per metric), and one probe's result:

# %%
frame = report.to_frame()
print(frame[frame.kind == "finding"][["probe", "severity", "where", "message"]].head())
result = nndiag.check_probe("gradients", "reference_models/xor.py", threads=1)
print(result.status, result.summary)
