"""What a rater reads: the labels of the notebook widget and the rater page alike ((ja, en) pairs, core.labels).

Their own module so that the rater page (``listening_server``) reads them without importing the test's
design (``listening``), which starts that page (``ListeningTest.serve``).
"""

from __future__ import annotations

from ..core.labels import Bilingual

LISTENING_LABELS: dict[str, Bilingual] = {
    "rater": ("評価者名", "Rater name"),
    "start": ("開始", "Start"),
    "clip": ("音声", "Clip"),
    "naturalness": ("自然さ（人間同士の対話らしさ）", "Naturalness (sounds like a human conversation)"),
    "meaningfulness": ("有意味さ（内容が意味をなすか）", "Meaningfulness (the content makes sense)"),
    "scale": ("1 = 非常に悪い … 5 = 非常に良い", "1 = very poor … 5 = excellent"),
    "submit": ("回答して次へ", "Submit and next"),
    "which": ("どちらの対話がより自然ですか", "Which dialogue sounds more natural?"),
    "a": ("A が良い", "A is better"),
    "b": ("B が良い", "B is better"),
    "same": ("同じくらい", "About the same"),
    "done": ("すべての試行が終わりました。ありがとうございました。", "All trials are done. Thank you!"),
    "loading": ("音声を読み込み中…", "loading audio…"),
    "headphone": ("ヘッドホンチェック", "Headphone check"),
    "quietest": ("3 つの音のうち、いちばん小さい音はどれですか", "Which of the three tones is the quietest?"),
    "tone": ("音", "Tone"),
}
