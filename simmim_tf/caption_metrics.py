"""BLEU-4 and CIDEr-D of generated captions, as the COCO caption evaluation
computes them: pycocoevalcap's scorers, called directly.

pycocoevalcap's own tokenizer (and METEOR and SPICE) need Java; its BLEU and
CIDEr scorers are pure Python. The texts are tokenised here instead, the way
the package's tokenizers see them (lower case, runs of letters and digits;
punctuation dropped, as the COCO tokenizer drops it). pycocoevalcap's
"CIDEr" is CIDEr-D (Vedantam et al. 2015: clipped n-gram counts, a length
penalty), with document frequencies from the references of the evaluated
set. Both are reported × 100, as caption papers print them.
"""

import contextlib
import io

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.question_tokenizer import split_words


def caption_scores(references, candidates):
    """references: a list (one per image) of lists of reference captions;
    candidates: a list of one generated caption per image. Returns
    {"bleu4": float, "cider_d": float, "images": int}, scores × 100."""
    if len(references) != len(candidates):
        raise SimMIMInputError(f"{len(candidates)} generated captions for {len(references)} images")
    if not candidates:
        raise SimMIMInputError("no captions to score")
    gts, res = {}, {}
    for i, (refs, candidate) in enumerate(zip(references, candidates, strict=True)):
        refs = [" ".join(split_words(r)) for r in refs]
        if not refs or not all(refs):
            raise SimMIMInputError(f"image {i}: every image needs references with words")
        gts[i] = refs
        res[i] = [" ".join(split_words(candidate))]
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their progress
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
    return {"bleu4": 100.0 * float(bleu[3]), "cider_d": 100.0 * float(cider), "images": len(gts)}


def format_caption_scores(result, title):
    """One line per metric, under `title`."""
    return (
        f"{title}\n  images   {result['images']}\n"
        f"  BLEU-4   {result['bleu4']:.1f}\n  CIDEr-D  {result['cider_d']:.1f}"
    )
