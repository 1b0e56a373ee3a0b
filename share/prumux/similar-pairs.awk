# similar-pairs.awk -- the most similar pairs of lines, by cosine similarity
# of their embeddings.  Input: the text file, then the embeddings (one TSV
# row of numbers per text line, as prumux-demux --emit=embeddings writes).
# Usage: awk -v top=5 -f similar-pairs.awk texts.txt embeddings.tsv
FNR == NR { text[NR] = $0; n = NR; next }
{
  m = FNR
  norm = 0
  for (i = 1; i <= NF; i++) { v[m, i] = $i; norm += $i * $i }
  len[m] = sqrt(norm); dim = NF
}
END {
  if (m != n) { print "similar-pairs: " n " texts but " m " embeddings" > "/dev/stderr"; exit 1 }
  k = 0
  for (a = 1; a <= n; a++)
    for (b = a + 1; b <= n; b++) {
      dot = 0
      for (i = 1; i <= dim; i++) dot += v[a, i] * v[b, i]
      score[++k] = dot / (len[a] * len[b]); pa[k] = a; pb[k] = b
    }
  if (top == "") top = 5
  for (r = 1; r <= top && r <= k; r++) {
    best = 0
    for (j = 1; j <= k; j++) if (!(j in used) && (best == 0 || score[j] > score[best])) best = j
    used[best] = 1
    printf "%.3f\t%s\t%s\n", score[best], text[pa[best]], text[pb[best]]
  }
}
