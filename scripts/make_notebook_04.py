"""Writes notebooks/04_sweeps_and_turn_taking.ipynb (kept as code so the notebook stays reviewable)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# 04 スイープと話者交替分析 / Sweeps and turn-taking\n\n"
        "サンプリング設定のグリッドを同じ入力で走らせ、各実行の話者交替（IPU・ポーズ・ギャップ・オーバーラップ・相槌）"
        "とテキストの速さを表にします。最後にプロンプト付き対話継続（J-Moshi 論文の評価）を行います。\n\n"
        "Run a grid of sampling settings on the same input, tabulate turn-taking (IPUs, pauses, gaps, overlaps, "
        "backchannels) and text rate per run, then do prompted dialogue continuation as in the J-Moshi paper.\n\n"
        "既定は CPU 上の tiny モデル（ランダム重み）です。Modal の GPU で本物の J-Moshi を使うには、下のセルで "
        "`EXECUTOR = \"modal\"`、`MODEL = \"j-moshi-ext\"` にします（README の Modal 節を参照）。"
    ),
    new_code_cell(
        "# Parameters / パラメータ (CI runs this notebook as is: tiny model, short inputs)\n"
        "import os\n"
        "\n"
        "MODEL = os.environ.get(\"JMOSHI_NB_MODEL\", \"tiny\")  # \"j-moshi-ext\" on a GPU\n"
        "EXECUTOR = os.environ.get(\"JMOSHI_NB_EXECUTOR\", \"local\")  # \"modal\": fan out on Modal GPUs\n"
        "PROMPT_S, CONTINUATION_S = (10.0, 20.0) if MODEL != \"tiny\" else (2.0, 1.5)\n"
        "OUT = \"runs/04\""
    ),
    new_code_cell(
        "import jmoshi_nb\n"
        "from jmoshi_nb.speech import dialogue_wav, speech_wav\n"
        "\n"
        "# Real Japanese speech, synthesized offline (pyopenjtalk) / オフラインで合成した日本語音声\n"
        "question = speech_wav(f\"{OUT}/inputs/question.wav\", lines=[\"最近、何か面白いことはありましたか。\"])\n"
        "base = jmoshi_nb.SessionConfig(model=MODEL, seed=1, name=\"sweep\")\n"
        "base"
    ),
    new_markdown_cell("## グリッドスイープ / A grid sweep"),
    new_code_cell(
        "df = jmoshi_nb.sweep(\n"
        "    grid={\"temp\": [0.6, 1.0], \"top_k\": [50, 250]},\n"
        "    inputs=[question],\n"
        "    base=base,\n"
        "    executor=EXECUTOR,\n"
        "    out_dir=f\"{OUT}/sweep\",\n"
        ")\n"
        "columns = [\"run\", \"temp\", \"top_k\", \"model_ipu_per_min\", \"model_gap_mean_s\", \"overlap_ratio\",\n"
        "           \"text_rate\", \"padding_ratio\", \"frame_ms_p50\"]\n"
        "df[columns]"
    ),
    new_code_cell(
        "jmoshi_nb.plot_sweep_heatmap(df, \"text_rate\", x=\"temp\", y=\"top_k\")"
    ),
    new_markdown_cell("## 1 回分の話者交替 / Turn-taking of one run"),
    new_code_cell(
        "rec = df.attrs[\"recordings\"][0]\n"
        "tt = jmoshi_nb.turn_taking(rec)\n"
        "tt.to_frame()"
    ),
    new_code_cell("jmoshi_nb.plot_timeline(tt, rec)"),
    new_markdown_cell(
        "## プロンプト付き対話継続 / Prompted dialogue continuation\n\n"
        "ステレオ対話の左チャネルをモデル側として最初の数秒をモデル自身の音声ストリームに与え（teacher forcing）、"
        "その後はモデルが続けます。/ The left channel plays the model's side during the prompt (forced into its "
        "audio stream); then the model continues on its own."
    ),
    new_code_cell(
        "dialogue, spoken = dialogue_wav(f\"{OUT}/inputs/dialogues/d1.wav\", turns=[\n"
        "    (\"B\", \"こんにちは、今日はいい天気ですね。\"), (\"A\", \"はい、そうですね。\"),\n"
        "])\n"
        "continued = jmoshi_nb.prompted_continuation(\n"
        "    f\"{OUT}/inputs/dialogues\", base, prompt_s=PROMPT_S, continuation_s=CONTINUATION_S,\n"
        "    out_dir=f\"{OUT}/continuation\",\n"
        ")\n"
        "jmoshi_nb.plot_recording(continued[0])"
    ),
    new_markdown_cell("## 設定の保存と共有 / Save and share the setting"),
    new_code_cell(
        "best = df.sort_values(\"text_rate\").iloc[0]\n"
        "sampling = base.sampling.updated(temp=float(best.temp), top_k=int(best.top_k))\n"
        "chosen = base.model_copy(update={\"name\": \"from-sweep\", \"sampling\": sampling})\n"
        "path = chosen.save(f\"{OUT}/chosen.yaml\")\n"
        "print(open(path, encoding=\"utf-8\").read())\n"
        "assert jmoshi_nb.load_config(path) == chosen"
    ),
    new_markdown_cell(
        "保存済みの実行はモデルなしで再分析できます。/ Saved runs re-analyse without the model:"
    ),
    new_code_cell(
        "from jmoshi_nb.research import iter_recordings, run_metrics\n"
        "\n"
        "{name: round(run_metrics(r)[\"text_rate\"], 2) for name, r in iter_recordings(f\"{OUT}/sweep\")}"
    ),
]

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
})
out = Path(__file__).resolve().parent.parent / "notebooks" / "04_sweeps_and_turn_taking.ipynb"
out.parent.mkdir(exist_ok=True)
nbformat.write(nb, out)
print(out)
