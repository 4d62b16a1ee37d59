import pytest

from jmoshi_nb.text import PieceDecoder, pieces_to_text


def test_japanese_gets_no_stray_spaces() -> None:
    assert pieces_to_text(["▁こ", "ん", "に", "ち", "は", "、", "▁今日", "は"]) == "こんにちは、今日は"


def test_english_keeps_word_spaces() -> None:
    assert pieces_to_text(["▁Hello", ",", "▁how", "▁are", "▁you"]) == "Hello, how are you"


def test_mixed_script() -> None:
    assert pieces_to_text(["▁J", "-", "Moshi", "▁は", "▁full", "▁duplex", "▁です"]) == "J-Moshiはfull duplexです"


def test_control_pieces_are_dropped() -> None:
    dec = PieceDecoder()
    assert dec.decode("<unk>") == "" and dec.decode("▁はい") == "はい"


def test_byte_fallback_pieces_become_characters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["こんにちは", "今日はいい天気です", "ありがとう"] * 5),
        model_writer=model,
        vocab_size=290,
        byte_fallback=True,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
        num_threads=1,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    ids = sp.encode("鰻です")  # 鰻 is not in the training text: it becomes three byte pieces
    assert any(sp.is_byte(i) for i in ids)
    dec = PieceDecoder(sp)
    assert "".join(dec.decode_id(i) for i in ids) == "鰻です"


def test_pieces_merge_into_phrases_at_pauses_and_length() -> None:
    from jmoshi_nb.text import Phrase, merge_pieces

    pieces = [(10, "こん"), (11, "にち"), (13, "は"), (14, ""), (30, " 元気"), (31, "？")]
    assert merge_pieces(pieces) == [Phrase(10, 13, "こんにちは"), Phrase(30, 31, "元気？")]
    split = [Phrase(10, 11, "こんにち"), Phrase(13, 13, "は"), Phrase(30, 31, "元気？")]
    assert merge_pieces(pieces, gap_frames=1) == split
    long = [(i, "あ") for i in range(40)]
    assert [len(p.text) for p in merge_pieces(long, max_chars=16)] == [16, 16, 8]
    with pytest.raises(ValueError, match="gap_frames"):
        merge_pieces(pieces, gap_frames=0)
