"""The architecture, checked: imports point down the layers, no cycles, small modules,
and studies use only public names.

Layers, bottom to top (README, "Layout"):
  0 core, nn, data        foundation: state, optimizers, sharding, checkpoints, writers,
                          batching; shared layers; data sets and the input pipeline
  1 config                loading configs, shared groups, typed specs of family groups
  2 models, diffusion, viz  networks; schedules, denoisers, samplers; pictures
  3 metrics               FID, IS, precision/recall, likelihoods, feature extractors
  4 methods               one spec + pure functions per family, the registry
  4 stylize               neural style transfer: one image's optimisation per content/style pair
  5 train                 the orchestration: a run from a config, the loop, trained runs
  6 tools                 what commands run besides training (converters, exports)
  7 main                  the command line
Packages of one layer may import each other (no cycle allowed).
"""
import ast
import os

import pytest

from conftest import REPO

GENJAX = os.path.join(REPO, 'genjax')
LAYERS = {'core': 0, 'nn': 0, 'data': 0, 'config': 1, 'models': 2, 'diffusion': 2, 'viz': 2,
          'metrics': 3, 'methods': 4, 'stylize': 4, 'train': 5, 'tools': 6, 'main': 7,
          '__init__': 7}
MAX_LINES = 500


def _modules():
  """module name ('genjax.core.state') -> file path, for every module of the package."""
  out = {}
  for root, _, files in os.walk(GENJAX):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
        out[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = path
  return out


def _imports(path: str, module: str, modules: dict) -> set[str]:
  """The genjax modules `path` imports anywhere (top level or inside functions).

  `from genjax.x import y` counts as an import of the module genjax.x.y when y
  is one, and of genjax.x otherwise (a name defined there).
  """
  tree = ast.parse(open(path).read(), path)
  package = module if path.endswith('__init__.py') else module.rsplit('.', 1)[0]
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.split('.')[0] == 'genjax'}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # Relative: resolve against this package.
        parts = package.split('.')
        base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      if base.split('.')[0] == 'genjax':
        for a in node.names:
          found.add(f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base)
  return found


def _layer(module: str) -> tuple[str, int]:
  part = module.split('.')[1] if module.count('.') else '__init__'
  if part not in LAYERS:
    pytest.fail(f'{module}: package {part!r} has no layer; add it to LAYERS (and README).')
  return part, LAYERS[part]


def _graph():
  modules = _modules()
  return modules, {m: {i for i in _imports(p, m, modules) if i in modules}
                   for m, p in modules.items()}


def test_every_import_points_down_or_sideways():
  modules, graph = _graph()
  bad = []
  for module, targets in graph.items():
    part, layer = _layer(module)
    for target in targets:
      target_part, target_layer = _layer(target)
      if target_layer > layer and target != 'genjax':
        bad.append(f'{module} (layer {layer}) imports {target} (layer {target_layer})')
  assert not bad, '\n'.join(bad)


def test_the_import_graph_has_no_cycle():
  _, graph = _graph()
  state, cycles = {}, []

  def visit(node, stack):
    state[node] = 'open'
    for nxt in sorted(graph[node]):
      if nxt == node or nxt == 'genjax':
        continue
      if state.get(nxt) == 'open':
        cycles.append(' -> '.join(stack[stack.index(nxt):] + [nxt]))
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = 'done'

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, '\n'.join(cycles)


def test_no_module_is_over_the_size_limit():
  long = {m: n for m, p in _modules().items() if (n := sum(1 for _ in open(p))) > MAX_LINES}
  assert not long, f'modules over {MAX_LINES} lines: {long}'


def test_the_checks_can_fail():
  """The import checks see an upward import and a cycle when there is one."""
  assert _layer('genjax.methods.vae')[1] > _layer('genjax.core.state')[1]
  fake = {'genjax.core.a': {'genjax.train.run'}, 'genjax.train.run': {'genjax.core.a'}}
  ups = [(m, t) for m, ts in fake.items() for t in ts if _layer(t)[1] > _layer(m)[1]]
  assert ups == [('genjax.core.a', 'genjax.train.run')]
  tree = ast.parse('from genjax.train import loop\nimport genjax.core.state\n')
  assert {'genjax.train.loop', 'genjax.core.state'} <= {
      *(f'{n.module}.{a.name}' for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        for a in n.names), *(a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                             for a in n.names)}


def test_studies_use_only_public_names():
  bad = []
  for root, _, files in os.walk(os.path.join(REPO, 'experiments')):
    for name in files:
      if not name.endswith('.py'):
        continue
      path = os.path.join(root, name)
      for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('genjax'):
          bad += [f'{path}: from {node.module} import {a.name}' for a in node.names
                  if a.name.startswith('_')]
        if isinstance(node, ast.Attribute) and node.attr.startswith('_') and \
            not node.attr.startswith('__'):
          base = node.value
          while isinstance(base, ast.Attribute):
            base = base.value
          if isinstance(base, ast.Name) and base.id in ('genjax', 'run_lib', 'trained', 'methods'):
            bad.append(f'{path}:{node.lineno}: {ast.unparse(node)}')
  assert not bad, '\n'.join(bad)
