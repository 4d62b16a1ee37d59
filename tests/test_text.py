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


def test_merge_pieces_splits_at_pauses_only() -> None:
    from jmoshi_nb.text import TextSpan, merge_pieces

    pieces = [(0.0, "こん"), (0.08, "にち"), (0.16, "は"), (0.96, " hello"), (1.04, " world"), (1.2, " ")]
    want = [TextSpan(0.0, 0.24, "こんにちは"), TextSpan(0.96, 1.28, "hello world")]
    assert merge_pieces(pieces, max_pause=0.4) == want
    # a pause exactly max_pause long still joins; a longer one splits
    assert len(merge_pieces([(0.0, "a"), (0.48, "b")], max_pause=0.4)) == 1
    assert len(merge_pieces([(0.0, "a"), (0.56, "b")], max_pause=0.4)) == 2
    assert merge_pieces([(0.0, " "), (1.0, "  ")]) == []
