"use strict";(self.rspackChunk_mlops_workbench_lab=self.rspackChunk_mlops_workbench_lab||[]).push([[700],{646(e,r,o){var t=o(601),n=o.n(t),a=o(314),i=(o.n(a))()(n());i.push([e.id,`.wb-sidebar { overflow: auto; padding: 8px; font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1); background: var(--jp-layout-color1); }
.wb-heading { font-size: var(--jp-ui-font-size2); margin: 0 0 8px; }
.wb-section { margin-bottom: 12px; border-top: 1px solid var(--jp-border-color2); padding-top: 6px; }
.wb-section-title { font-size: var(--jp-ui-font-size1); text-transform: uppercase; letter-spacing: 0.05em; margin: 0 0 4px; color: var(--jp-ui-font-color2); }
.wb-table { border-collapse: collapse; width: 100%; }
.wb-table th, .wb-table td { text-align: left; padding: 2px 4px; border-bottom: 1px solid var(--jp-border-color3); vertical-align: top; }
.wb-button { margin: 1px 2px; padding: 0 6px; min-height: 20px; font-size: var(--jp-ui-font-size0); }
.wb-note { color: var(--jp-ui-font-color2); }
.wb-error { color: var(--jp-error-color1); }
.wb-link { cursor: pointer; text-decoration: underline; }
.wb-external { color: var(--jp-content-link-color); }
.wb-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 4px; background: var(--jp-error-color1); }
.wb-status-ok .wb-dot { background: var(--jp-success-color1); }
.wb-badge { display: inline-block; border-radius: 8px; padding: 0 6px; margin-left: 4px; font-size: var(--jp-ui-font-size0); color: white; }
.wb-badge-champion { background: var(--jp-success-color1); }
.wb-badge-challenger { background: var(--jp-warn-color1); }
.wb-drift-drift, .wb-status-failed, .wb-status-killed { color: var(--jp-error-color1); }
.wb-status-finished, .wb-drift-ok { color: var(--jp-success-color1); }
.wb-log { max-height: 240px; overflow: auto; background: var(--jp-layout-color2); padding: 4px; font-size: var(--jp-code-font-size); white-space: pre-wrap; }
.wb-differs { font-weight: bold; }
.wb-run-controls { display: flex; gap: 4px; margin-bottom: 4px; }
.wb-run-filter { flex: 1; }
.wb-form th { text-align: right; padding-right: 8px; font-weight: normal; }
.wb-hint { color: var(--jp-ui-font-color2); }
.wb-reason { width: 100%; }
.wb-lineage { padding: 16px; overflow: auto; }
.wb-lineage-chain { list-style: none; padding: 0; }
.wb-lineage-step { margin: 0 0 4px; }
.wb-lineage-kind { text-transform: uppercase; font-size: var(--jp-ui-font-size0); color: var(--jp-ui-font-color2); }
.wb-lineage-title { font-weight: bold; }
.wb-lineage-arrow { font-size: 18px; color: var(--jp-ui-font-color2); }
.wb-actions { margin-top: 2px; }
.wb-actions .wb-button { margin-left: 0; }
.wb-log { overflow-wrap: anywhere; }
.wb-state-paused { color: var(--jp-warn-color1); }
.wb-state-running { color: var(--jp-brand-color1); font-weight: bold; }
.wb-event-failed, .wb-event-missed, .wb-decision-failed { color: var(--jp-error-color1); }
.wb-event-skipped { color: var(--jp-warn-color1); }
.wb-decision-champion, .wb-decision-challenger { color: var(--jp-success-color1); }
.wb-schedules-table td:nth-child(2) { white-space: nowrap; }
`,""]),o.d(r,{},{A:i})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",t=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),t&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),t&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,t,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(t)for(var c=0;c<this.length;c++){var s=this[c][0];null!=s&&(i[s]=!0)}for(var l=0;l<e.length;l++){var p=[].concat(e[l]);t&&i[p[0]]||(void 0!==a&&(void 0===p[5]||(p[1]="@layer".concat(p[5].length>0?" ".concat(p[5]):""," {").concat(p[1],"}")),p[5]=a),o&&(p[2]&&(p[1]="@media ".concat(p[2]," {").concat(p[1],"}")),p[2]=o),n&&(p[4]?(p[1]="@supports (".concat(p[4],") {").concat(p[1],"}"),p[4]=n):p[4]="".concat(n)),r.push(p))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,t=0;t<r.length;t++)if(r[t].identifier===e){o=t;break}return o}function t(e,t){for(var n={},a=[],i=0;i<e.length;i++){var c=e[i],s=t.base?c[0]+t.base:c[0],l=n[s]||0,p="".concat(s," ").concat(l);n[s]=l+1;var d=o(p),u={css:c[1],media:c[2],sourceMap:c[3],supports:c[4],layer:c[5]};if(-1!==d)r[d].references++,r[d].updater(u);else{var f=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(u,t);t.byIndex=i,r.splice(i,0,{identifier:p,updater:f,references:1})}a.push(p)}return a}e.exports=function(e,n){var a=t(e=e||[],n=n||{});return function(e){e=e||[];for(var i=0;i<a.length;i++){var c=o(a[i]);r[c].references--}for(var s=t(e,n),l=0;l<a.length;l++){var p=o(a[l]);0===r[p].references&&(r[p].updater(),r.splice(p,1))}a=s}}},659(e){var r={};e.exports=function(e,o){var t=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var t,n,a;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(n=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,n&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(a=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(t,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},959(e,r,o){var t=o(72),n=o.n(t),a=o(825),i=o.n(a),c=o(659),s=o.n(c),l=o(56),p=o.n(l),d=o(540),u=o.n(d),f=o(113),b=o.n(f),v=o(646),w={};w.styleTagTransform=b(),w.setAttributes=p(),w.insert=s().bind(null,"head"),w.domAPI=i(),w.insertStyleElement=u(),n()(v.A,w),v.A&&v.A.locals&&v.A.locals}}]);