// A Node.js agency client for the Graduate Exchange Gateway, with node-soap (docs/integration.md).
//
//   node gateway-client.js send GATEWAY_URL SENDER RECIPIENT DOCUMENT.xml KEY.pem CERT.pem
//   node gateway-client.js fetch GATEWAY_URL PARTICIPANT KEY.pem CERT.pem
//
// "send" signs the document's message with WS-Security (RSA-SHA256, SHA-256, exclusive C14N; Body,
// Timestamp and the gw:Routing header) and prints the gateway's answer as one JSON line: the
// receipt's status and message id, or the fault code. "fetch" takes up to 10 messages from the
// participant's pull mailbox, acknowledges them and prints what it took.
// Checking the gateway's signature on the receipt: docs/signing.md, section 5 (xml-crypto).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const soap = require('soap');

const GW = 'urn:gradex:gateway:1';

function security(keyFile, certFile) {
  return new soap.WSSecurityCert(fs.readFileSync(keyFile), fs.readFileSync(certFile), '', {
    hasTimeStamp: true,
    signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',  // node-soap 1.x's default too (WSSecurityCert.js); said here so it is plain
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
    signatureTransformations: ['http://www.w3.org/2001/10/xml-exc-c14n#'],   // not enveloped-signature
    additionalReferences: ['gw:Routing'],                                    // the routing header is signed too
    signerOptions: { prefix: 'ds' },
  });
}

function routing(sender, recipient, service) {
  const messageId = crypto.randomUUID();  // a new id per message; the same id again only to resend it
  const header =
    `<gw:Routing xmlns:gw="${GW}">` +
    `<gw:MessageId>${messageId}</gw:MessageId>` +
    `<gw:Sender>${sender}</gw:Sender>` +
    `<gw:Recipient><gw:Participant>${recipient}</gw:Participant></gw:Recipient>` +
    `<gw:Service><gw:Name>${service}</gw:Name><gw:Version>1</gw:Version></gw:Service>` +
    `<gw:CreatedAt>${new Date().toISOString()}</gw:CreatedAt>` +
    '</gw:Routing>';
  return { messageId, header };
}

function faultCode(error) {
  // A refusal is a SOAP Fault (HTTP 500, 413 or 415) whose detail carries gw:FaultDetail/gw:Code.
  const body = error.response && typeof error.response.data === 'string' ? error.response.data : '';
  const match = /<gw:Code>([A-Z_]+)<\/gw:Code>/.exec(body);
  if (!match) throw error;  // not an answer of the gateway: a network error, a timeout
  return match[1];
}

async function send(url, sender, recipient, documentFile, keyFile, certFile) {
  const document = fs.readFileSync(documentFile, 'utf8');
  const root = /<(\w+):(\w+)\s([^>]*)>/.exec(document.replace(/<\?xml[^>]*\?>/, '').replace(/<!--[\s\S]*?-->/g, ''));
  const [, prefix, service, attributes] = root;
  const namespaces = [...attributes.matchAll(/xmlns:(\w+)="([^"]+)"/g)].map(([, name, value]) => (
    { name: `xmlns:${name}`, value }));
  const client = await soap.createClientAsync(`${url}/soap?wsdl`, {
    overrideRootElement: { namespace: prefix, xmlnsAttributes: namespaces },  // the document's own prefixes
  });
  client.setSecurity(security(keyFile, certFile));
  const { messageId, header } = routing(sender, recipient, service);
  client.addSoapHeader(header);
  // node-soap writes the document's element itself: hand it the children as they are.
  const inner = document
    .replace(new RegExp(`^[\\s\\S]*?<${prefix}:${service}[^>]*>`), '')
    .replace(new RegExp(`</${prefix}:${service}>\\s*$`), '');
  try {
    const [receipt] = await client[`${service}Async`]({ $xml: inner });
    return { messageId, status: receipt.Status, recipient: receipt.Recipient };
  } catch (error) {
    return { messageId, fault: faultCode(error) };
  }
}

async function fetch(url, participant, keyFile, certFile) {
  const client = await soap.createClientAsync(`${url}/soap?wsdl`);
  client.setSecurity(security(keyFile, certFile));
  // Plumbing requests go to your own mailbox: the recipient is your own participant id.
  client.addSoapHeader(routing(participant, participant, 'FetchMessages').header);
  const [fetched] = await client.FetchMessagesAsync({ MaxMessages: 10 });
  const deliveries = [].concat((fetched && fetched.Delivery) || []);
  // Verify each gw:Delivery's gateway signature and act on gw:Original before acknowledging it.
  const taken = deliveries.map((d) => ({ MessageId: d.MessageId, Sender: d.Sender, Service: d.Service.Name }));
  if (taken.length > 0) {
    client.clearSoapHeaders();
    client.addSoapHeader(routing(participant, participant, 'AcknowledgeMessages').header);
    const [acknowledged] = await client.AcknowledgeMessagesAsync({
      Message: taken.map(({ MessageId, Sender }) => ({ MessageId, Sender })),
    });
    const results = [].concat(acknowledged.Result || []);
    taken.forEach((t, i) => { t.Acknowledged = results[i] && results[i].Status; });
  }
  return { fetched: taken };
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  const commands = { send, fetch };
  if (!commands[command]) {
    console.error('usage: node gateway-client.js send|fetch ... (see the comment at the top)');
    process.exit(2);
  }
  console.log(JSON.stringify(await commands[command](...args)));
}

main().catch((error) => { console.error(error.stack || error); process.exit(1); });
