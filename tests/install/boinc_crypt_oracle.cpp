// Test oracle: BOINC's own crypto and XML code (Debian's libboinc_crypt.so.7,
// libboinc.so.7) run on what boinc_pymw writes. Only calls into the
// libraries; no BOINC logic is re-implemented here.
//
//   genkey PRIVATE PUBLIC          keys made the way crypt_prog -genkey makes them
//   print-private KEYFILE          scan_key_hex + print_key_hex (BOINC re-prints our key)
//   print-public KEYFILE
//   sign FILE PRIVATE              sign_file + print_hex_data / sprint_hex_data (both,
//                                  checked equal: sign_executable uses one or the other)
//   check2 FILE SIGFILE PUBLIC     md5_file + check_file_signature2 (what the client runs)
//   check FILE SIGFILE PUBLIC      md5_file + check_file_signature (binary key and signature)
//   xmldoc XMLFILE PUBLIC DIR      parse an app_version xml_doc with XML_PARSER, print its
//                                  fields one per line, and check each file_info's
//                                  signature and size against DIR/<name>
//
// Exit status 0 on success; check/check2 print "valid" or "invalid".

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <openssl/bn.h>
#include <openssl/rsa.h>

#include "crypt.h"
#include "md5_file.h"
#include "miofile.h"
#include "parse.h"

static std::string slurp(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    fclose(f);
    return s;
}

template <class K> static void scan_key(const char* path, K& key) {
    FILE* f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    int rc = scan_key_hex(f, (KEY*)&key, sizeof(key));
    fclose(f);
    if (rc) { fprintf(stderr, "scan_key_hex(%s) = %d\n", path, rc); exit(3); }
}

static int genkey(const char* priv_path, const char* pub_path) {
    RSA* rsa = RSA_new();
    BIGNUM* e = BN_new();
    BN_set_word(e, 65537);
    if (!RSA_generate_key_ex(rsa, 1024, e, NULL)) return 3;
    R_RSA_PRIVATE_KEY priv;
    R_RSA_PUBLIC_KEY pub;
    openssl_to_keys(rsa, 1024, priv, pub);
    FILE* f = fopen(priv_path, "w");
    print_key_hex(f, (KEY*)&priv, sizeof(priv));
    fclose(f);
    f = fopen(pub_path, "w");
    print_key_hex(f, (KEY*)&pub, sizeof(pub));
    fclose(f);
    return 0;
}

static int sign(const char* path, const char* priv_path) {
    R_RSA_PRIVATE_KEY priv;
    scan_key(priv_path, priv);
    unsigned char sig_buf[SIGNATURE_SIZE_BINARY];
    DATA_BLOCK sig;
    sig.data = sig_buf;
    sig.len = sizeof(sig_buf);
    int rc = sign_file(path, priv, sig);
    if (rc) { fprintf(stderr, "sign_file = %d\n", rc); return 3; }
    // sign_executable has printed with print_hex_data and, in later releases,
    // sprint_hex_data: both must give the same text
    FILE* tmp = tmpfile();
    print_hex_data(tmp, sig);
    rewind(tmp);
    std::string printed;
    char chunk[512];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, tmp)) > 0) printed.append(chunk, n);
    fclose(tmp);
    char text[SIGNATURE_SIZE_TEXT];
    sprint_hex_data(text, sig);
    if (printed != text) { fprintf(stderr, "print_hex_data != sprint_hex_data\n"); return 5; }
    fputs(printed.c_str(), stdout);
    return 0;
}

static int check(const char* path, const char* sig_path, const char* pub_path, bool v2) {
    char md5[MD5_LEN];
    double nbytes;
    if (md5_file(path, md5, nbytes)) { fprintf(stderr, "md5_file failed\n"); return 3; }
    std::string sig_text = slurp(sig_path);
    bool answer = false;
    int rc;
    if (v2) {
        std::string key_text = slurp(pub_path);
        rc = check_file_signature2(md5, sig_text.c_str(), key_text.c_str(), answer);
    } else {
        R_RSA_PUBLIC_KEY pub;
        scan_key(pub_path, pub);
        unsigned char sig_buf[SIGNATURE_SIZE_BINARY];
        DATA_BLOCK sig;
        sig.data = sig_buf;
        sig.len = sizeof(sig_buf);
        FILE* f = fopen(sig_path, "r");
        rc = scan_hex_data(f, sig);
        fclose(f);
        if (rc == 0) rc = check_file_signature(md5, pub, sig, answer);
    }
    printf("%s\n", (rc == 0 && answer) ? "valid" : "invalid");
    return 0;
}

// One line per field: "file_info <name> <field> <value>" and
// "app_version <field> <value>" / "file_ref <index> <field> <value>".
static int xmldoc(const char* xml_path, const char* pub_path, const char* dir) {
    std::string doc = slurp(xml_path);
    std::string key_text = slurp(pub_path);
    MIOFILE mf;
    mf.init_buf_read(doc.c_str());
    XML_PARSER xp(&mf);
    std::string name, url, signature;
    double nbytes = -1;
    bool executable = false;
    int ref_index = -1;
    enum { TOP, FILE_INFO, APP_VERSION, FILE_REF } where = TOP;
    char buf[4096];
    while (!xp.get_tag()) {
        if (!xp.is_tag) continue;
        switch (where) {
        case TOP:
            if (xp.match_tag("file_info")) {
                where = FILE_INFO;
                name.clear(); url.clear(); signature.clear();
                nbytes = -1; executable = false;
            } else if (xp.match_tag("app_version")) {
                where = APP_VERSION;
            } else {
                printf("unexpected %s\n", xp.parsed_tag);
            }
            break;
        case FILE_INFO:
            if (xp.match_tag("/file_info")) {
                printf("file_info %s url %s\n", name.c_str(), url.c_str());
                printf("file_info %s nbytes %.0f\n", name.c_str(), nbytes);
                printf("file_info %s executable %d\n", name.c_str(), executable ? 1 : 0);
                std::string local = std::string(dir) + "/" + name;
                char md5[MD5_LEN];
                double size;
                bool answer = false;
                if (md5_file(local.c_str(), md5, size)) {
                    printf("file_info %s signature missing-file\n", name.c_str());
                } else {
                    int rc = check_file_signature2(md5, signature.c_str(), key_text.c_str(), answer);
                    printf("file_info %s signature %s\n", name.c_str(),
                           (rc == 0 && answer) ? "valid" : "invalid");
                    printf("file_info %s size_matches %d\n", name.c_str(), size == nbytes ? 1 : 0);
                }
                where = TOP;
            } else if (xp.parse_string("name", name)) {
            } else if (xp.parse_string("url", url)) {
            } else if (xp.parse_double("nbytes", nbytes)) {
            } else if (xp.parse_bool("executable", executable)) {
            } else if (xp.match_tag("file_signature")) {
                if (xp.element_contents("</file_signature>", buf, sizeof buf)) return 4;
                signature = buf;
            } else {
                printf("file_info %s unexpected %s\n", name.c_str(), xp.parsed_tag);
            }
            break;
        case APP_VERSION:
            if (xp.match_tag("/app_version")) {
                where = TOP;
            } else if (xp.match_tag("file_ref")) {
                where = FILE_REF;
                ref_index++;
            } else if (xp.parse_str("app_name", buf, sizeof buf)) {
                printf("app_version app_name %s\n", buf);
            } else if (xp.parse_str("api_version", buf, sizeof buf)) {
                printf("app_version api_version %s\n", buf);
            } else if (xp.parse_str("file_prefix", buf, sizeof buf)) {
                printf("app_version file_prefix %s\n", buf);
            } else {
                int v;
                bool flag;
                if (xp.parse_int("version_num", v)) {
                    printf("app_version version_num %d\n", v);
                } else if (xp.parse_bool("dont_throttle", flag) || xp.parse_bool("needs_network", flag)
                           || xp.parse_bool("is_wrapper", flag)) {
                    printf("app_version %s %d\n", xp.parsed_tag, flag ? 1 : 0);
                } else {
                    printf("app_version unexpected %s\n", xp.parsed_tag);
                }
            }
            break;
        case FILE_REF: {
            bool flag;
            if (xp.match_tag("/file_ref")) {
                where = APP_VERSION;
            } else if (xp.parse_str("file_name", buf, sizeof buf)) {
                printf("file_ref %d file_name %s\n", ref_index, buf);
            } else if (xp.parse_str("open_name", buf, sizeof buf)) {
                printf("file_ref %d open_name %s\n", ref_index, buf);
            } else if (xp.parse_bool("main_program", flag)) {
                printf("file_ref %d main_program %d\n", ref_index, flag ? 1 : 0);
            } else if (xp.parse_bool("copy_file", flag)) {
                printf("file_ref %d copy_file %d\n", ref_index, flag ? 1 : 0);
            } else {
                printf("file_ref %d unexpected %s\n", ref_index, xp.parsed_tag);
            }
            break;
        }
        }
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    std::string cmd = argv[1];
    if (cmd == "genkey" && argc == 4) return genkey(argv[2], argv[3]);
    if (cmd == "print-private" && argc == 3) {
        R_RSA_PRIVATE_KEY key;
        scan_key(argv[2], key);
        print_key_hex(stdout, (KEY*)&key, sizeof(key));
        return 0;
    }
    if (cmd == "print-public" && argc == 3) {
        R_RSA_PUBLIC_KEY key;
        scan_key(argv[2], key);
        print_key_hex(stdout, (KEY*)&key, sizeof(key));
        return 0;
    }
    if (cmd == "sign" && argc == 4) return sign(argv[2], argv[3]);
    if (cmd == "check2" && argc == 5) return check(argv[2], argv[3], argv[4], true);
    if (cmd == "check" && argc == 5) return check(argv[2], argv[3], argv[4], false);
    if (cmd == "xmldoc" && argc == 5) return xmldoc(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: see the comment at the top of this file\n");
    return 2;
}
