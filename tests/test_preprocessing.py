import numpy as np
import pytest
from PIL import Image

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing import AnswerVocabulary, QuestionTokenizer, load_image
from simmim_tf.preprocessing.question_tokenizer import OOV_ID, PAD_ID


def test_tokenizer_ids_oov_padding_truncation(tmp_path):
    tok = QuestionTokenizer.fit(["Is the red object on the left?", "what is the red shape?"], 6)
    ids, mask = tok.encode("is the PURPLE object on the left")
    assert ids.dtype == np.int32 and ids.shape == (6,)
    assert ids[2] == OOV_ID  # unseen word: OOV, not an error
    assert mask.tolist() == [True] * 6
    ids, mask = tok.encode("red?")
    assert ids[1:].tolist() == [PAD_ID] * 5 and mask.tolist() == [True] + [False] * 5
    long_ids, _ = tok.encode("the " * 50)
    assert long_ids.shape == (6,)  # truncated
    tok.save(tmp_path / "tok.json")
    again = QuestionTokenizer.load(tmp_path / "tok.json")
    assert again.encode("is the red object on the left?")[0].tolist() == (
        tok.encode("is the red object on the left?")[0].tolist()
    )


@pytest.mark.parametrize("question", ["", "   ", "?!"])
def test_tokenizer_rejects_empty_questions(question):
    tok = QuestionTokenizer.fit(["a b"], 4)
    with pytest.raises(SimMIMInputError, match="empty question"):
        tok.encode(question)


def test_answer_vocabulary():
    vocab = AnswerVocabulary.fit(["yes", "no", "yes", "2"])
    assert vocab.answers[0] == "yes" and vocab.counts[0] == 2
    with pytest.raises(SimMIMInputError, match="'maybe' is not in the answer vocabulary"):
        vocab.id("maybe", where="q.jsonl:3: ")


def test_load_image_errors(tmp_path):
    rgb = tmp_path / "ok.png"
    Image.new("RGB", (10, 10), (255, 0, 0)).save(rgb)
    assert load_image(str(rgb), 20).shape == (20, 20, 3)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(SimMIMInputError, match="notes.png: not a readable PNG or JPEG"):
        load_image(str(text))
    with pytest.raises(SimMIMInputError, match="image not found"):
        load_image(str(tmp_path / "missing.png"))
