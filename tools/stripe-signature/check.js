// Usage: node check.js sign <secret> <payload-file>     -> prints a Stripe-Signature header
//        node check.js verify <secret> <payload-file> <header> -> exits 0 when Stripe accepts it
// Both directions use Stripe's own library, so the simulator and the server are held to
// exactly what Stripe does.
const fs = require('fs');
const Stripe = require('stripe');
const stripe = new Stripe('sk_test_unused');
const [mode, secret, file, header] = process.argv.slice(2);
const payload = fs.readFileSync(file, 'utf8');
if (mode === 'sign') {
  process.stdout.write(stripe.webhooks.generateTestHeaderString({ payload, secret }));
} else if (mode === 'verify') {
  try {
    stripe.webhooks.constructEvent(payload, header, secret);
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
} else {
  console.error('usage: check.js sign|verify <secret> <payload-file> [header]');
  process.exit(2);
}
