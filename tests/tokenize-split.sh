#!/bin/sh
# tokenize-split.sh -- the tokenizer's ids do not depend on how the text is
# cut into pieces (tests/test-tokenize.c) over the multilingual corpus.
. "$abs_top_srcdir/tests/init.sh"

# A vocabulary of letters, pieces and a few words, so that words split into
# several pieces, some succeed and some become [UNK].
{
  printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' the hello un \
    '##able' '##ing' 'é' '##é' 'e' '北' '京' 'ü' '##ü' 'ı' '##ı' "'" '!'
  for c in a b c d e f g h i j k l m n o p q r s t u v w x y z \
      A B C D E F G H I J K L M N O P Q R S T U V W X Y Z 0 1 2 3 4 5; do
    printf '%s\n##%s\n' "$c" "$c"
  done
} > vocab.txt
"$abs_top_builddir/tests/test-tokenize" vocab.txt \
  "$srcdir/tests/data/tokenize-corpus.txt" || fail_ "ids depend on the pieces"
"$abs_top_builddir/tests/test-tokenize" vocab.txt \
  "$srcdir/tests/data/tokenize-pairs.txt" || fail_ "ids depend on the pieces"
