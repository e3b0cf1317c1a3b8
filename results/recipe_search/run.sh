set -u
T0=$(date +%s)
mkdir -p /tmp/data/cifar10 /tmp/logs && tar xzf .gpu/test.tgz -C /tmp/data/cifar10 && tar xzf .gpu/train12500.tgz -C /tmp/data/cifar10 || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 SCFRONT_CACHE=/tmp/cache
nvidia-smi --query-gpu=name --format=csv,noheader; python3 -c "import torch; print(torch.__version__)"
S="python3 -m scfront.cli"
B="--preset cpu --data-root /tmp/data --device cuda --no-progress --set data.train_limit=12500"
P=""
run() { n=$1; shift; $S train $B --out /tmp/r/$n "$@" > /tmp/logs/$n.log 2>&1 & P="$P $!"; }
run ref
run ref_s1 --set train.seed=1
run b64 --set train.batch_size=64
run b64_s1 --set train.batch_size=64 --set train.seed=1
run b64_lr03 --set train.batch_size=64 --set train.lr_max=0.03
run b128_lr03 --set train.lr_max=0.03
run wd1e4 --set train.weight_decay=1e-4
run b64_wd2e4 --set train.batch_size=64 --set train.weight_decay=2e-4
( for s in 40 100 200; do $S evaluate .gpu/resnet32_pgd_at.pt --data-root /tmp/data --attacks pgd-linf --steps $s --n-images 500 --no-checks --device cuda --no-progress --out /tmp/conv/pgdat_$s; done
  for s in 40 100 200; do $S evaluate results/train/cifar10_cpu_defense --data-root /tmp/data --attacks pgd-linf --steps $s --n-images 500 --no-checks --device cuda --no-progress --out /tmp/conv/defense_$s; done ) > /tmp/logs/conv.log 2>&1 &
snap() { tar czf $OUT/.a.tmp -C /tmp --exclude=checkpoints --exclude=state --exclude=adversarials.safetensors --exclude=model.safetensors r conv logs 2>/dev/null; mv $OUT/.a.tmp $OUT/light.tgz; }
while [ $(( $(date +%s) - T0 )) -lt 520 ]; do
  sleep 20; snap
  alive=0; for p in $P; do kill -0 $p 2>/dev/null && alive=1; done
  echo "t=$(( $(date +%s) - T0 )) $(for f in /tmp/r/*/log.jsonl; do echo -n "$(basename $(dirname $f)):$(wc -l < $f) "; done)"
  [ $alive = 0 ] && break
done
snap; ls -la $OUT
for f in /tmp/r/*/log.jsonl; do echo "$f $(tail -n1 $f | cut -c1-160)"; done
grep -h "pgd-linf" /tmp/logs/conv.log | tail -8
