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
