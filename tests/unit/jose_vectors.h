/*
 * Signed examples of the JOSE RFCs, typed in from the documents (never
 * fetched at run time): RFC 7515 appendix A, RFC 7520 section 4 (its
 * compact serializations) and RFC 8037 appendix A.4 for Ed25519.
 * Long base64url values are split as the RFCs print them.
 */
#ifndef SPOGATE_TEST_JOSE_VECTORS_H
#define SPOGATE_TEST_JOSE_VECTORS_H

/* ---- RFC 7515 appendix A ---- */

/* The payload of A.1 to A.3: {"iss":"joe","exp":1300819380,
 * "http://example.com/is_root":true} with CRLFs. */
#define RFC7515_CLAIMS \
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt" \
	"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
/* A time at which those claims are valid (exp 1300819380). */
#define RFC7515_NOW 1300819000LL

/* A.1: HS256, the key of RFC 7517 appendix A.3. */
static const char rfc7515_a1_jwks[] =
	"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T"
	"-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";
static const char rfc7515_a1[] =
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC7515_CLAIMS "."
	"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* A.2: RS256. */
static const char rfc7515_a2_jwks[] =
	"{\"keys\":[{\"kty\":\"RSA\","
	"\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
	"HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
	"D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
	"SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
	"MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
	"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\","
	"\"e\":\"AQAB\"}]}";
static const char rfc7515_a2[] =
	"eyJhbGciOiJSUzI1NiJ9." RFC7515_CLAIMS "."
	"cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZ"
	"mh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjb"
	"KBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHl"
	"b1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZES"
	"c6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AX"
	"LIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

/* A.3: ES256. */
static const char rfc7515_a3_jwks[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
static const char rfc7515_a3[] =
	"eyJhbGciOiJFUzI1NiJ9." RFC7515_CLAIMS "."
	"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8IS"
	"lSApmWQxfKTUJqPP3-Kg6NU1Q";

/* A.4: ES512 over the plain text "Payload". */
static const char rfc7515_a4_jwks[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\","
	"\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_"
	"NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\","
	"\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDl"
	"y79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}]}";
static const char rfc7515_a4[] =
	"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
	"AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq"
	"wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp"
	"EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

/* A.5: an unsecured JWS, which must never verify. */
static const char rfc7515_a5[] = "eyJhbGciOiJub25lIn0." RFC7515_CLAIMS ".";

/* ---- RFC 7520 section 4 (keys of sections 3.1, 3.3 and 3.5) ---- */

static const char rfc7520_jwks[] =
	"{\"keys\":["
	"{\"kty\":\"EC\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\","
	"\"crv\":\"P-521\","
	"\"x\":\"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9"
	"A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt\","
	"\"y\":\"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVy"
	"SsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1\"},"
	"{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\","
	"\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT"
	"-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV"
	"wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
	"oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde"
	"3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC"
	"LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g"
	"HdrNP5zw\",\"e\":\"AQAB\"},"
	"{\"kty\":\"oct\",\"kid\":\"018c0ae5-4d9b-471b-bfd6-eef314bc7037\",\"use\":\"sig\","
	"\"alg\":\"HS256\",\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}"
	"]}";

/* Figure 8: the payload, a quote from The Fellowship of the Ring. */
#define RFC7520_PAYLOAD \
	"SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH" \
	"lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk" \
	"b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm" \
	"UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"

/* 4.1: RSA v1.5 (RS256). */
static const char rfc7520_4_1[] =
	"eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX"
	"hhbXBsZSJ9." RFC7520_PAYLOAD "."
	"MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK"
	"ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J"
	"IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w"
	"W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP"
	"xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f"
	"cIe8u9ipH84ogoree7vjbU5y18kDquDg";

/* 4.2: RSA-PSS (PS384). */
static const char rfc7520_4_2[] =
	"eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX"
	"hhbXBsZSJ9." RFC7520_PAYLOAD "."
	"cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I"
	"pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU"
	"vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX"
	"e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT"
	"0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a"
	"6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw";

/* 4.3: ECDSA (ES512). */
static const char rfc7520_4_3[] =
	"eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX"
	"hhbXBsZSJ9." RFC7520_PAYLOAD "."
	"AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb"
	"u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv"
	"AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/* 4.4: HMAC-SHA2 (HS256). */
static const char rfc7520_4_4[] =
	"eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LW"
	"VlZjMxNGJjNzAzNyJ9." RFC7520_PAYLOAD "."
	"s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

/* ---- RFC 8037 appendix A (Ed25519) ---- */

static const char rfc8037_jwks[] =
	"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
	"\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
/* A.4: "Example of Ed25519 signing". */
static const char rfc8037_a4[] =
	"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
	"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5B"
	"hVsPt9g7sVvpAr_MuM0KAg";

#endif
