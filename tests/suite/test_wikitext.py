"""WikiText read as lm-evaluation-harness reads it (``suite.wikitext``): articles and the detokenizer."""

from lmeval_fixtures.suite.wikitext import split_wikitext_articles, wikitext_detokenize

RAW = "\n".join([
    " ", " = First = ", " ", " Body one . ", " ", " = = Sub = = ", " ", " More text . ", " ",
    " = Second = ", " ", " Body @-@ two , here . ", " ", "",
])


def test_articles_start_at_top_level_headings_only():
    articles = split_wikitext_articles(RAW)
    assert len(articles) == 2
    assert articles[0].startswith(" = First = ") and " = = Sub = = " in articles[0]
    assert articles[1].startswith(" = Second = ")
    # the last article keeps the file's final empty element
    assert articles[1].endswith(" \n")
    # nothing is lost but the blank leading chunk
    assert "\n".join(articles) == RAW.split("\n", 1)[1]


def test_detokenizer_matches_lm_eval_rules():
    text = ' = = Sub = = \n Body @-@ two , here ( in brackets ) and " quoted " 1 @,@ 000 , 3 @.@ 14 . The dog \'s '
    assert wikitext_detokenize(text) == ' == Sub ==\nBody-two, here (in brackets) and "quoted" 1,000, 3.14. The dog\'s '
