package backup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/poly1305" //nolint:staticcheck // restic's MAC is Poly1305-AES, which the newer packages do not offer
	"golang.org/x/crypto/scrypt"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// Every restic command that opens a repository first derives the key from the password with
// scrypt, with parameters `restic init` calibrates to ~0.5 s of CPU, and init itself spends
// ~2 s calibrating. A backup, copy or restore test runs restic several times, so on a shared
// 2-core machine most of a backup test's time went there. bspRepo writes a repository restic
// opens as any other, but whose key file asks for a cheap derivation: the scripts under test
// run unchanged, on a real repository, and only the password stretching is cheaper. The tests
// that leave the repositories to the scripts (TestBackupOpsMake, the database tests) keep
// proving that the scripts initialise them.

// bspLowKDF are the scrypt parameters of the key bspRepo writes (restic's own tests use
// similarly low ones).
var bspLowKDF = struct{ N, R, P int }{N: 1 << 10, R: 8, P: 1}

// bspMaster is a repository's master key as restic stores it inside a key file.
type bspMaster struct {
	MAC struct {
		K []byte `json:"k"`
		R []byte `json:"r"`
	} `json:"mac"`
	Encrypt []byte `json:"encrypt"`
}

// bspKeyFile is a file of a repository's keys/ folder.
type bspKeyFile struct {
	Created  time.Time `json:"created"`
	Username string    `json:"username"`
	Hostname string    `json:"hostname"`
	KDF      string    `json:"kdf"`
	N        int       `json:"N"`
	R        int       `json:"r"`
	P        int       `json:"p"`
	Salt     []byte    `json:"salt"`
	Data     []byte    `json:"data"`
}

// bspTemplate is what every repository bspRepo writes takes from one `restic init` per test
// process: the master key and the config (version, chunker polynomial), so that the installed
// restic decides the format.
var bspTemplate struct {
	once   sync.Once
	err    error
	master bspMaster
	config map[string]any
}

// bspLoadTemplate runs `restic init` once and reads back its master key and config.
func bspLoadTemplate() error {
	dir, err := os.MkdirTemp("", "opsready-restic-template-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const password = "opsready-template"
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	repo := filepath.Join(dir, "repo")
	cmd := exec.Command("restic", "init", "--repo", repo, "--password-file", pwFile, "--no-cache")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("restic init: %v\n%s", err, out)
	}
	keys, err := os.ReadDir(filepath.Join(repo, "keys"))
	if err != nil || len(keys) != 1 {
		return fmt.Errorf("restic init wrote %d keys: %v", len(keys), err)
	}
	raw, err := os.ReadFile(filepath.Join(repo, "keys", keys[0].Name()))
	if err != nil {
		return err
	}
	var kf bspKeyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		return fmt.Errorf("restic key file: %w", err)
	}
	if kf.KDF != "scrypt" {
		return fmt.Errorf("restic key file: kdf %q, want scrypt", kf.KDF)
	}
	enc, mac, err := bspDerive(password, kf.Salt, kf.N, kf.R, kf.P)
	if err != nil {
		return err
	}
	plain, err := bspDecrypt(enc, mac, kf.Data)
	if err != nil {
		return fmt.Errorf("restic key file: %w", err)
	}
	if err := json.Unmarshal(plain, &bspTemplate.master); err != nil {
		return fmt.Errorf("restic master key: %w", err)
	}
	m := bspTemplate.master
	raw, err = os.ReadFile(filepath.Join(repo, "config"))
	if err != nil {
		return err
	}
	plain, err = bspDecrypt(m.Encrypt, append(append([]byte{}, m.MAC.K...), m.MAC.R...), raw)
	if err != nil {
		return fmt.Errorf("restic config: %w", err)
	}
	return json.Unmarshal(plain, &bspTemplate.config)
}

// bspRepo creates a local restic repository at repo (which must not exist) that opens with
// the password in passwordFile, like `restic init` would, with a cheap key derivation. Its
// repository id is new; its master key and chunker parameters are the template's, as an
// off-site repository initialised with --copy-chunker-params shares the latter.
func bspRepo(t testing.TB, repo, passwordFile string) {
	t.Helper()
	e2eutil.RequireTool(t, "restic")
	bspTemplate.once.Do(func() { bspTemplate.err = bspLoadTemplate() })
	if bspTemplate.err != nil {
		t.Fatalf("prepare a restic repository: %v", bspTemplate.err)
	}
	if _, err := os.Stat(repo); err == nil {
		t.Fatalf("prepare a restic repository: %s exists", repo)
	}
	pw, err := os.ReadFile(passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	// restic strips the trailing newline of a password file, nothing else.
	password := strings.TrimSuffix(strings.TrimSuffix(string(pw), "\n"), "\r")
	m := bspTemplate.master
	macKey := append(append([]byte{}, m.MAC.K...), m.MAC.R...)

	cfg := map[string]any{}
	for k, v := range bspTemplate.config {
		cfg[k] = v
	}
	id := make([]byte, 32)
	must(t, bspRand(id))
	cfg["id"] = hex.EncodeToString(id)
	plainCfg, err := json.Marshal(cfg)
	must(t, err)
	encCfg, err := bspEncrypt(m.Encrypt, macKey, plainCfg)
	must(t, err)

	kf := bspKeyFile{Created: time.Now(), Username: "opsready-e2e", Hostname: "opsready-e2e", KDF: "scrypt",
		N: bspLowKDF.N, R: bspLowKDF.R, P: bspLowKDF.P, Salt: make([]byte, 64)}
	must(t, bspRand(kf.Salt))
	enc, mac, err := bspDerive(password, kf.Salt, kf.N, kf.R, kf.P)
	must(t, err)
	plainKey, err := json.Marshal(m)
	must(t, err)
	if kf.Data, err = bspEncrypt(enc, mac, plainKey); err != nil {
		t.Fatal(err)
	}
	rawKey, err := json.Marshal(kf)
	must(t, err)
	sum := sha256.Sum256(rawKey)

	for _, d := range []string{"index", "keys", "locks", "snapshots"} {
		must(t, os.MkdirAll(filepath.Join(repo, d), 0o700))
	}
	for i := 0; i < 256; i++ {
		must(t, os.MkdirAll(filepath.Join(repo, "data", fmt.Sprintf("%02x", i)), 0o700))
	}
	must(t, os.WriteFile(filepath.Join(repo, "keys", hex.EncodeToString(sum[:])), rawKey, 0o400))
	must(t, os.WriteFile(filepath.Join(repo, "config"), encCfg, 0o400))
}

func bspRand(b []byte) error {
	_, err := rand.Read(b)
	return err
}

// bspDerive is restic's key derivation: scrypt gives 64 bytes, the AES-256 key then the
// Poly1305-AES key (k, r).
func bspDerive(password string, salt []byte, n, r, p int) (enc, mac []byte, err error) {
	k, err := scrypt.Key([]byte(password), salt, n, r, p, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("scrypt: %w", err)
	}
	return k[:32], k[32:], nil
}

// bspMAC is restic's MAC: Poly1305 with r from the key and s = AES_k(nonce).
func bspMAC(mac, nonce, msg []byte) ([16]byte, error) {
	var key [32]byte
	var out [16]byte
	block, err := aes.NewCipher(mac[:16])
	if err != nil {
		return out, err
	}
	block.Encrypt(key[16:], nonce)
	copy(key[:16], mac[16:32])
	// restic masks r as Poly1305 requires; x/crypto clamps it the same way.
	poly1305.Sum(&out, msg, &key)
	return out, nil
}

// bspEncrypt is restic's authenticated encryption: IV, AES-256-CTR ciphertext, then the MAC
// of the ciphertext with the IV as nonce.
func bspEncrypt(enc, mac, plain []byte) ([]byte, error) {
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, aes.BlockSize)
	if err := bspRand(iv); err != nil {
		return nil, err
	}
	ct := make([]byte, len(plain))
	cipher.NewCTR(block, iv).XORKeyStream(ct, plain)
	tag, err := bspMAC(mac, iv, ct)
	if err != nil {
		return nil, err
	}
	return append(append(iv, ct...), tag[:]...), nil
}

// bspDecrypt reverses bspEncrypt and checks the MAC.
func bspDecrypt(enc, mac, data []byte) ([]byte, error) {
	if len(data) < aes.BlockSize+16 {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short", len(data))
	}
	iv, ct, tag := data[:aes.BlockSize], data[aes.BlockSize:len(data)-16], data[len(data)-16:]
	want, err := bspMAC(mac, iv, ct)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		return nil, fmt.Errorf("wrong password or damaged data (MAC mismatch)")
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(plain, ct)
	return plain, nil
}

// TestBspRepo checks that restic opens a repository bspRepo wrote, stores and restores data
// in it, finds it consistent, refuses another password, and that two of them get their own ids.
func TestBspRepo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	must(t, os.WriteFile(pwFile, []byte("s3cret-Pw\n"), 0o600))
	repo := filepath.Join(dir, "repo")
	bspRepo(t, repo, pwFile)
	restic := func(pw string, args ...string) (string, error) {
		cmd := exec.Command("restic", append([]string{"--repo", repo, "--password-file", pw, "--no-cache"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("content"), 0o644))
	if out, err := restic(pwFile, "backup", src); err != nil {
		t.Fatalf("restic backup into the prepared repository: %v\n%s", err, out)
	}
	if out, err := restic(pwFile, "check", "--read-data"); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
	if out, err := restic(pwFile, "dump", "latest", filepath.Join(src, "f")); err != nil || out != "content" {
		t.Fatalf("restic dump: %q, %v", out, err)
	}
	wrong := filepath.Join(dir, "wrong")
	must(t, os.WriteFile(wrong, []byte("other\n"), 0o600))
	if out, err := restic(wrong, "snapshots"); err == nil || !strings.Contains(out, "wrong password") {
		t.Fatalf("restic opened the prepared repository with another password (%v):\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(repo, "config"))
	must(t, err)
	if len(raw) < 32 {
		t.Fatalf("config of %d bytes", len(raw))
	}
	// Two repositories get different ids (restic's cache is per id).
	other := filepath.Join(dir, "other")
	bspRepo(t, other, pwFile)
	ids := map[string]bool{}
	for _, r := range []string{repo, other} {
		out, err := exec.Command("restic", "--repo", r, "--password-file", pwFile, "--no-cache", "cat", "config").Output()
		if err != nil {
			t.Fatalf("restic cat config: %v", err)
		}
		var cfg struct {
			ID string `json:"id"`
		}
		must(t, json.Unmarshal(out, &cfg))
		ids[cfg.ID] = true
	}
	if len(ids) != 2 {
		t.Errorf("two prepared repositories share their id: %v", ids)
	}
}
