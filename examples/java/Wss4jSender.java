// A sender that signs with Apache WSS4J as Debian packages it (libwss4j-java 1.6, with
// libxml-security-java), run with the JDK's single-file launcher:
//
//   java -cp /usr/share/java/wss4j.jar:/usr/share/java/xmlsec.jar:/usr/share/java/commons-logging.jar \
//       Wss4jSender.java URL SENDER RECIPIENT DOCUMENT.xml KEY.pem CERT.pem CA.pem
//
// It wraps DOCUMENT in a SOAP envelope with the gateway's routing header, signs Body, Timestamp and
// routing header with WSS4J, posts it, and checks the gateway's signed answer with WSS4J too (the
// certificate in its BinarySecurityToken must chain to CA.pem). Exit 0 prints the receipt's status;
// a SOAP Fault prints its code and exits 2.
//
// WSS4J's defaults are kept wherever the gateway allows them: exclusive C14N with InclusiveNamespaces
// PrefixLists, wsu:Ids it chooses, a Timestamp of 300 s. Changed, because the gateway refuses the
// defaults: the key identifier (IssuerSerial -> the certificate itself, DirectReference) and SHA-1
// (-> RSA-SHA256 or ECDSA-SHA256 and SHA-256 digests).

import java.io.ByteArrayInputStream;
import java.io.FileInputStream;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.apache.ws.security.message.WSSecTimestamp;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

public class Wss4jSender {
    static final String SOAP = "http://schemas.xmlsoap.org/soap/envelope/";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    static final String GW = "urn:gradex:gateway:1";
    static final String PASSWORD = "in-memory-only";

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: Wss4jSender URL SENDER RECIPIENT DOCUMENT.xml KEY.pem CERT.pem CA.pem");
            System.exit(64);
        }
        String url = args[0], sender = args[1], recipient = args[2];
        WSSConfig.init();
        CertificateFactory x509 = CertificateFactory.getInstance("X.509");
        X509Certificate cert = (X509Certificate) x509.generateCertificate(new FileInputStream(args[5]));
        X509Certificate ca = (X509Certificate) x509.generateCertificate(new FileInputStream(args[6]));
        String algorithm = cert.getPublicKey().getAlgorithm();  // "RSA", or "EC" for a P-256 key
        PrivateKey key = KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(pem(args[4])));

        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document business = factory.newDocumentBuilder().parse(Path.of(args[3]).toFile());
        Document doc = factory.newDocumentBuilder().newDocument();
        Element envelope = doc.createElementNS(SOAP, "soapenv:Envelope");
        doc.appendChild(envelope);
        // Declare the prefixes as attributes: WSS4J canonicalises the DOM as it is, while the
        // serialiser would add the declarations later, and the digests would no longer match.
        envelope.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:soapenv", SOAP);
        envelope.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:gw", GW);
        Element header = (Element) envelope.appendChild(doc.createElementNS(SOAP, "soapenv:Header"));
        Element body = (Element) envelope.appendChild(doc.createElementNS(SOAP, "soapenv:Body"));
        body.appendChild(doc.importNode(business.getDocumentElement(), true));
        Element routing = (Element) header.appendChild(doc.createElementNS(GW, "gw:Routing"));
        append(doc, routing, "MessageId", UUID.randomUUID().toString());
        append(doc, routing, "Sender", sender);
        Element to = append(doc, routing, "Recipient", null);
        append(doc, to, "Participant", recipient);
        Element service = append(doc, routing, "Service", null);
        append(doc, service, "Name", business.getDocumentElement().getLocalName());
        append(doc, service, "Version", "1");
        append(doc, routing, "CreatedAt", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());

        // The signing key and certificate, in memory (a PKCS#12 store is what WSS4J's Merlin reads).
        KeyStore keys = KeyStore.getInstance("PKCS12");
        keys.load(null, null);
        keys.setKeyEntry("agency", key, PASSWORD.toCharArray(), new Certificate[] {cert});
        Merlin crypto = new Merlin();
        crypto.setKeyStore(keys);

        WSSecHeader security = new WSSecHeader();
        security.setMustUnderstand(true);
        security.insertSecurityHeader(doc);
        WSSecTimestamp timestamp = new WSSecTimestamp();  // WSS4J's default: 300 s
        timestamp.build(doc, security);
        WSSecSignature signature = new WSSecSignature();
        signature.setUserInfo("agency", PASSWORD);
        signature.setKeyIdentifierType(WSConstants.BST_DIRECT_REFERENCE);  // default IssuerSerial: refused
        signature.setUseSingleCertificate(true);
        signature.setSignatureAlgorithm(algorithm.equals("EC")
                ? "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
                : "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");  // default RSA-SHA1: refused
        signature.setDigestAlgo("http://www.w3.org/2001/04/xmlenc#sha256");   // default SHA-1: refused
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", SOAP, ""));
        parts.add(new WSEncryptionPart("Timestamp", WSU, ""));
        parts.add(new WSEncryptionPart("Routing", GW, ""));
        signature.setParts(parts);
        signature.build(doc, crypto, security);

        StringWriter xml = new StringWriter();
        TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(xml));
        HttpResponse<byte[]> answer = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create(url + "/soap"))
                        .header("Content-Type", "text/xml; charset=utf-8")
                        .POST(HttpRequest.BodyPublishers.ofString(xml.toString()))
                        .build(),
                HttpResponse.BodyHandlers.ofByteArray());

        // The gateway signs answers and faults: check with WSS4J, trusting only the gateway's CA.
        Document response = factory.newDocumentBuilder().parse(new ByteArrayInputStream(answer.body()));
        KeyStore trusted = KeyStore.getInstance("PKCS12");
        trusted.load(null, null);
        trusted.setCertificateEntry("gateway-ca", ca);
        Merlin trust = new Merlin();
        trust.setTrustStore(trusted);
        List<WSSecurityEngineResult> results = new WSSecurityEngine().processSecurityHeader(response, null, null, trust);
        boolean signed = false;
        for (WSSecurityEngineResult result : results) {
            if (((Integer) result.get(WSSecurityEngineResult.TAG_ACTION)) != WSConstants.SIGN) continue;
            // WSS4J checked the value and the chain to CA.pem; whose certificate it is, is ours to check
            // (a participant's certificate from the same CA is no gateway's).
            X509Certificate signer = (X509Certificate) result.get(WSSecurityEngineResult.TAG_X509_CERTIFICATE);
            String subject = signer.getSubjectX500Principal().getName("RFC2253", Map.of("2.5.4.5", "SERIALNUMBER"));
            if (!subject.contains("SERIALNUMBER=gateway")) throw new SecurityException("not the gateway's certificate");
            signed = true;
        }
        if (!signed) throw new SecurityException("the gateway's answer carries no signature");
        System.out.println("answer signature verified by WSS4J");

        String code = text(response, GW, "Code");
        if (code != null) {
            System.out.println("refused: " + code + ": " + text(response, GW, "Message"));
            System.exit(2);
        }
        System.out.println("accepted " + text(response, GW, "MessageId") + " status " + text(response, GW, "Status"));
    }

    static Element append(Document doc, Element parent, String name, String text) {
        Element child = doc.createElementNS(GW, "gw:" + name);
        if (text != null) child.setTextContent(text);
        parent.appendChild(child);
        return child;
    }

    static String text(Document doc, String namespace, String name) {
        var found = doc.getElementsByTagNameNS(namespace, name);
        return found.getLength() == 0 ? null : found.item(0).getTextContent();
    }

    static byte[] pem(String path) throws Exception {
        String text = Files.readString(Path.of(path)).replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return Base64.getDecoder().decode(text);
    }
}
