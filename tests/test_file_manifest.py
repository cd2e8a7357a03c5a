"""genjax.core.file_manifest: what it records, and each kind of damage it names."""
import hashlib
import os

from genjax.core import file_manifest


def _tree(tmp_path):
  (tmp_path / 'a.bin').write_bytes(b'abc' * 1000)
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'b.bin').write_bytes(b'xyz')
  file_manifest.write(str(tmp_path), ['sub/b.bin', 'a.bin'])
  return file_manifest.read(str(tmp_path))


def test_records_size_and_sha256_of_each_file(tmp_path):
  manifest = _tree(tmp_path)
  assert manifest == {'a.bin': [3000, hashlib.sha256(b'abc' * 1000).hexdigest()],
                      'sub/b.bin': [3, hashlib.sha256(b'xyz').hexdigest()]}
  assert not os.path.exists(tmp_path / (file_manifest.NAME + '.tmp'))
  assert file_manifest.first_difference(str(tmp_path), manifest) is None


def test_no_manifest_reads_as_none(tmp_path):
  assert file_manifest.read(str(tmp_path)) is None


def test_names_missing_truncated_and_changed_files(tmp_path):
  manifest = _tree(tmp_path)
  (tmp_path / 'a.bin').write_bytes(b'abd' + b'abc' * 999)  # Same size, one byte changed.
  assert file_manifest.first_difference(str(tmp_path), manifest) == (
      'a.bin', 'sha256 differs from when it was written')
  assert file_manifest.first_difference(str(tmp_path), manifest, check_hash=False) is None
  (tmp_path / 'a.bin').write_bytes(b'abc' * 999)
  assert file_manifest.first_difference(str(tmp_path), manifest) == (
      'a.bin', '2997 bytes, 3000 when written (truncated?)')
  os.remove(tmp_path / 'sub' / 'b.bin')
  assert file_manifest.first_difference(str(tmp_path), {'sub/b.bin': manifest['sub/b.bin']}) == (
      'sub/b.bin', 'missing')
