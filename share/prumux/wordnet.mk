# wordnet.mk -- the WordNet lexicographer-file task, shared by
# experiment.mk and grid.mk (included; not run alone).  Data: the noun
# glosses of Debian's wordnet-base (apt-get install wordnet-base), each
# labelled with its lexicographer file; LABELS picks the classes (8 by
# default: act, animal, artifact, communication, location, person, plant,
# state) and each keeps PER_CLASS_TRAIN training and PER_CLASS_DEV
# development glosses, so the task is balanced and chance is 1/8.
#
# The including makefile sets WORK, PER_CLASS_TRAIN and PER_CLASS_DEV
# first (targets are expanded as they are read).  Makes $(WORK)/glosses.tsv (label TAB gloss, shuffled), $(WORK)/train.tsv
# and $(WORK)/dev.tsv.  The shuffle is a fixed LCG in awk (exact in
# double-precision awks), so the split is the same everywhere.

WORDNET = /usr/share/wordnet
LABELS = noun.act,noun.animal,noun.artifact,noun.communication,noun.location,noun.person,noun.plant,noun.state
# One line per gloss: lexicographer file name TAB gloss (examples cut off),
# shuffled with a seeded LCG (exact in double-precision awks), the first
# PER_CLASS_TRAIN + PER_CLASS_DEV of each class kept.
$(WORK)/glosses.tsv: $(WORDNET)/data.noun
	@mkdir -p $(WORK)
	LC_ALL=C awk -v keep="$(LABELS)" 'BEGIN { n = split(keep, K, ","); for (i = 1; i <= n; i++) want[K[i]] = 1 \
	    split("03 noun.Tops 04 noun.act 05 noun.animal 06 noun.artifact 07 noun.attribute 08 noun.body 09 noun.cognition 10 noun.communication 11 noun.event 12 noun.feeling 13 noun.food 14 noun.group 15 noun.location 16 noun.motive 17 noun.object 18 noun.person 19 noun.phenomenon 20 noun.plant 21 noun.possession 22 noun.process 23 noun.quantity 24 noun.relation 25 noun.shape 26 noun.state 27 noun.substance 28 noun.time", L, " "); \
	    for (i = 1; i < 52; i += 2) name[L[i]] = L[i + 1]; s = 12345 } \
	  /^  / { next } \
	  { lab = name[$$2]; if (!(lab in want)) next; g = $$0; sub(/^[^|]*\| */, "", g); sub(/; *".*/, "", g); \
	    gsub(/[\t\r]/, " ", g); sub(/ +$$/, "", g); if (g == "") next; \
	    s = (s * 69069 + 1) % 4294967296; printf "%010d\t%s\t%s\n", s, lab, g }' $< \
	  | sort -n | cut -f 2- > $@.t && mv $@.t $@

# Both files from one run (a grouped target, GNU make 4.3).
$(WORK)/train.tsv $(WORK)/dev.tsv &: $(WORK)/glosses.tsv
	awk -F '\t' -v t=$(PER_CLASS_TRAIN) -v d=$(PER_CLASS_DEV) -v o=$(WORK) \
	  '{ c = ++n[$$1]; if (c <= t) print > (o "/train.tsv.t"); else if (c <= t + d) print > (o "/dev.tsv.t") }' $<
	mv $(WORK)/train.tsv.t $(WORK)/train.tsv && mv $(WORK)/dev.tsv.t $(WORK)/dev.tsv

