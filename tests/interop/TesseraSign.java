// Drives the module through Java's SunPKCS11 provider.
//
//   java TesseraSign <provider config file> <user PIN>
//
// Loads the provider from the config, opens the token as a PKCS11 KeyStore and, for every private
// key entry (a private key with a certificate of the same CKA_ID), signs with the token key and
// verifies both through the provider (C_Verify with the token's public key object or the
// certificate's key) and through the JDK's own software provider with the certificate's public
// key. Then it generates a session key pair of each type through the provider's KeyPairGenerator
// and signs/verifies with it. Prints one line per check; exits 1 on the first failure.

import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Collections;

public class TesseraSign {
    static final byte[] DATA = "Tessera signs through SunPKCS11".getBytes(StandardCharsets.UTF_8);

    static String algorithmFor(String keyAlgorithm) {
        switch (keyAlgorithm) {
            case "EC":
                return "SHA256withECDSA";
            case "RSA":
                return "SHA256withRSA";
            default:
                throw new IllegalStateException("unexpected key algorithm " + keyAlgorithm);
        }
    }

    static byte[] sign(Provider p, String alg, PrivateKey key) throws Exception {
        Signature s = Signature.getInstance(alg, p);
        s.initSign(key);
        s.update(DATA);
        return s.sign();
    }

    static boolean verify(Provider p, String alg, PublicKey key, byte[] sig) throws Exception {
        Signature v = p == null ? Signature.getInstance(alg) : Signature.getInstance(alg, p);
        v.initVerify(key);
        v.update(DATA);
        return v.verify(sig);
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("OK " + what);
    }

    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        System.out.println("provider " + p.getName());

        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        int entries = 0;
        for (String alias : Collections.list(ks.aliases())) {
            if (!ks.isKeyEntry(alias)) {
                System.out.println("entry " + alias + " (certificate only)");
                continue;
            }
            PrivateKey key = (PrivateKey) ks.getKey(alias, null);
            Certificate cert = ks.getCertificate(alias);
            String alg = algorithmFor(key.getAlgorithm());
            System.out.println("entry " + alias + ": " + key.getAlgorithm() + " private key, " + alg);
            byte[] sig = sign(p, alg, key);
            check(verify(p, alg, cert.getPublicKey(), sig), alias + " " + alg + " verified by the token");
            check(verify(null, alg, cert.getPublicKey(), sig), alias + " " + alg + " verified by the JDK");
            DATA[0] ^= 1;
            check(!verify(p, alg, cert.getPublicKey(), sig), alias + " " + alg + " altered data rejected by the token");
            DATA[0] ^= 1;
            entries++;
        }
        check(entries > 0, entries + " private key entries in the KeyStore");

        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC", p);
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA", p);
        rsa.initialize(2048);
        for (KeyPairGenerator g : new KeyPairGenerator[] {ec, rsa}) {
            KeyPair kp = g.generateKeyPair();
            String alg = algorithmFor(kp.getPrivate().getAlgorithm());
            byte[] sig = sign(p, alg, kp.getPrivate());
            check(verify(p, alg, kp.getPublic(), sig), "generated " + g.getAlgorithm() + " key pair, " + alg + " verified by the token");
            check(verify(null, alg, kp.getPublic(), sig), "generated " + g.getAlgorithm() + " key pair, " + alg + " verified by the JDK");
        }
        System.out.println("PASS");
    }
}
