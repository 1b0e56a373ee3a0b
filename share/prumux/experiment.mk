# experiment.mk -- train multiplexed BERT classifiers (N = 1, 2, 5) on real
# text and report their dev accuracy.  Data: the WordNet noun glosses of
# Debian's wordnet-base (apt-get install wordnet-base), each classified by
# its lexicographer file (8 classes: act, animal, artifact, communication,
# location, person, plant, state; balanced, so chance is 12.5%).
#
#   make -f experiment.mk [WORK=dir] [WORDNET=/usr/share/wordnet] [THREADS=2]
#
# The prumux programs are taken from PATH.  Everything is deterministic:
# the shuffle is a fixed LCG in awk, and prumux-train runs with --seed.
# Results: $(WORK)/results.tsv (N, dev accuracy, training time).
# The data rules are wordnet.mk's (beside this file); grid.mk is the whole
# PruMUX experiment on a pretrained model.

PRUMUX_SHARE := $(dir $(lastword $(MAKEFILE_LIST)))
WORK = wordnet-mux
THREADS = 1
SEED = 42
PER_CLASS_TRAIN = 2000
PER_CLASS_DEV = 250
VOCAB_WORDS = 6000
MAXLEN = 32
SPEC = layers=2,hidden=64,heads=2,ffn=256,max-length=$(MAXLEN)
# retrieval warm-up and task epochs, learning rates; TASK_EPOCHS_n and
# TASK_LR_n override the task stage for N = n (more instances per
# sequence learn more slowly)
WARM_EPOCHS = 10
TASK_EPOCHS = 6
WARM_LR = 1e-3
TASK_LR = 5e-4
TASK_EPOCHS_2 = 10
TASK_LR_2 = 1e-3
TASK_EPOCHS_5 = 12
TASK_LR_5 = 1.5e-3
BATCH = 40
NS = 1 2 5

comma := ,
# The same names for prumux-train --init (separated by ':'), so the models
# print them.
LABEL_NAMES = $(subst $(comma),:,$(LABELS))
TRAIN = prumux-train --seed=$(SEED) -j $(THREADS) -q

all: $(WORK)/results.tsv
	@cat $(WORK)/results.tsv

include $(PRUMUX_SHARE)wordnet.mk

# A BERT-style vocabulary from the training glosses: [PAD], [unused*],
# [UNK], [CLS] (id 101, as the multiplexer expects), [SEP], [MASK], then
# punctuation and the most frequent words.
$(WORK)/vocab.txt: $(WORK)/train.tsv
	{ echo "[PAD]"; i=0; while [ $$i -lt 99 ]; do echo "[unused$$i]"; i=$$((i + 1)); done; \
	  printf '%s\n' "[UNK]" "[CLS]" "[SEP]" "[MASK]"; \
	  printf '%s\n' . , ";" : "(" ")" "'" - '"' / ! "?"; \
	  cut -f 2 $< | LC_ALL=C tr 'A-Z' 'a-z' | LC_ALL=C tr -cs 'a-z0-9' '\n' | grep . \
	    | LC_ALL=C sort | uniq -c | LC_ALL=C sort -k1,1nr -k2,2 | head -n $(VOCAB_WORDS) | awk '{ print $$2 }'; \
	} > $@.t && mv $@.t $@

$(WORK)/%.pmxs: $(WORK)/%.tsv $(WORK)/vocab.txt
	prumux-tokenize --vocab=$(WORK)/vocab.txt -f 2 -l 1 -L $(LABELS) -n $(MAXLEN) -o $@ $<

DATA = $(WORK)/train.pmxs $(WORK)/dev.pmxs

# N = 1: task training only.  N > 1: token-retrieval warm-up, then the task
# with 0.1 retrieval (as DataMUX).
$(WORK)/model-1.pmx: $(DATA)
	$(TRAIN) --init=$(SPEC),n=1,labels=$(LABEL_NAMES) --vocab=$(WORK)/vocab.txt --task=wordnet-lexfile \
	  -t $(WORK)/train.pmxs -d $(WORK)/dev.pmxs -b $(BATCH) -e $(TASK_EPOCHS) \
	  --lr=$(TASK_LR) -w 0.06 --log=$(WORK)/metrics-1.tsv -o $@

$(WORK)/warm-%.pmx: $(DATA)
	$(TRAIN) --init=$(SPEC),n=$*,labels=$(LABEL_NAMES) --vocab=$(WORK)/vocab.txt --task=wordnet-lexfile \
	  -O retrieval -t $(WORK)/train.pmxs -d $(WORK)/dev.pmxs -b $(BATCH) \
	  -e $(WARM_EPOCHS) --lr=$(WARM_LR) -w 0.06 --log=$(WORK)/metrics-warm-$*.tsv -o $@

$(WORK)/model-%.pmx: $(WORK)/warm-%.pmx
	$(TRAIN) -i $< -O task:0.9,retrieval:0.1 -t $(WORK)/train.pmxs -d $(WORK)/dev.pmxs \
	  -b $(BATCH) -e $(or $(TASK_EPOCHS_$*),$(TASK_EPOCHS)) --lr=$(or $(TASK_LR_$*),$(TASK_LR)) \
	  -w 0.06 --log=$(WORK)/metrics-$*.tsv -o $@

# Dev accuracy measured by the inference programs on the saved model.
$(WORK)/eval-%.txt: $(WORK)/model-%.pmx
	prumux-mux -m $< $(WORK)/dev.pmxs | prumux-infer -m $< -j $(THREADS) \
	  | prumux-demux -m $< --eval=$@ > /dev/null

$(WORK)/results.tsv: $(foreach n,$(NS),$(WORK)/eval-$(n).txt)
	{ printf 'N\tdev_accuracy\tretrieval_accuracy\n'; \
	  for n in $(NS); do \
	    acc=$$(awk '$$1 == "accuracy" { print $$2 }' $(WORK)/eval-$$n.txt); \
	    ret=$$(test -f $(WORK)/metrics-warm-$$n.tsv && tail -n 1 $(WORK)/metrics-warm-$$n.tsv | cut -f 8 || echo -); \
	    printf '%s\t%s\t%s\n' $$n $$acc $$ret; done; } > $@.t && mv $@.t $@

clean:
	rm -rf $(WORK)

.PHONY: all clean
.DELETE_ON_ERROR:
# Keep the warm-up models and every checkpoint (intermediate files to make).
.SECONDARY:
