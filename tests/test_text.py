import pytest

from jmoshi_nb.core.text import PieceDecoder, TextTokenizer, pieces_to_text


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
    assert isinstance(sp, TextTokenizer)  # the interface the kit asks of a tokenizer is SentencePiece's
    ids = sp.encode("鰻です")  # 鰻 is not in the training text: it becomes three byte pieces
    assert any(sp.is_byte(i) for i in ids)
    dec = PieceDecoder(sp)
    assert "".join(dec.decode_id(i) for i in ids) == "鰻です"


def test_a_tokenizer_lacking_the_piece_lookups_is_refused_by_name() -> None:
    class PiecesOnly:
        def id_to_piece(self, id: int) -> str:  # noqa: A002
            return f"t{id}"

    with pytest.raises(TypeError, match="PiecesOnly is not a text tokenizer: it lacks is_byte, is_control, is_unknown"):
        PieceDecoder(PiecesOnly())  # type: ignore[arg-type]


def test_phrase_times_and_no_length_cap() -> None:
    from jmoshi_nb.core.text import merge_pieces

    (phrase,) = merge_pieces([(i, "あ") for i in range(10, 40)], max_chars=None)
    assert (phrase.start, phrase.end, len(phrase.text)) == (0.8, 3.2, 30)
